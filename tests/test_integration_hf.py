"""The Hugging Face Trainer integration learns the same smaller BERT as the user's own loop.

A tiny BertForSequenceClassification from a small config, random init, synthetic tokens. It
gates what ``attach`` gives on this BERT: attention heads, FFN neurons and the pooler.
"""

import pytest
import torch

import archlearn as al

transformers = pytest.importorskip("transformers")
from archlearn.integrations.hf import ArchLearning, ArchLearningTrainer  # noqa: E402

EPOCHS, BATCH, SEED = 2, 16, 0
# the gates' Adam rate: at 0.01 the gates closed attention heads the task needs (two epochs)
OPTIONS = {"lambda1": 0.005, "k": 0.4, "lr": 0.003}
LR = 3e-3  # the weights'; with it two epochs learn the task (attention alone suffices for it)


def make_bert():
    config = transformers.BertConfig(
        vocab_size=32, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=16, num_labels=2,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,  # no RNG in the forward
        attn_implementation="eager")
    torch.manual_seed(SEED)
    return transformers.BertForSequenceClassification(config)


def make_examples(n: int = 1024, seed: int = 1) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 32, (n, 12), generator=g)
    labels = (ids == 7).any(1).long()  # does token 7 occur?
    return [{"input_ids": i, "labels": y} for i, y in zip(ids, labels)]


class InOrder(torch.utils.data.IterableDataset):
    """The examples in a fixed order: the Trainer's own shuffling would not match a hand loop's."""

    def __init__(self, examples):
        self.examples = examples

    def __iter__(self):
        return iter(self.examples)


def users_own_loop(examples):
    model = make_bert()
    loader = torch.utils.data.DataLoader(examples, batch_size=BATCH)
    learner = al.attach(model, examples[0]["input_ids"][None], total_steps=EPOCHS * len(loader),
                        **OPTIONS)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    model.train()
    for _ in range(EPOCHS):
        for batch in loader:
            loss = model(**batch).loss + learner.penalty()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            learner.step()
    return model, learner, learner.shrink()


def test_hf_trainer_learns_the_same_smaller_bert_as_the_users_loop(tmp_path):
    examples = make_examples()
    full, learner, expected = users_own_loop(examples)

    model = make_bert()
    callback = ArchLearning(examples[0]["input_ids"][None], save_dir=tmp_path / "small",
                            **OPTIONS)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=EPOCHS * len(examples) // BATCH,
        per_device_train_batch_size=BATCH, learning_rate=LR, weight_decay=0.0,
        lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=0.0, optim="adamw_torch",
        save_strategy="no", report_to=[], disable_tqdm=True, use_cpu=True, seed=SEED,
        logging_strategy="no")
    trainer = ArchLearningTrainer(model=model, args=args, train_dataset=InOrder(examples),
                                  archlearning=callback)
    trainer.train()

    arch = callback.learner.architecture()
    assert arch["layers"] == learner.architecture()["layers"]
    assert arch["params"] < sum(p.numel() for p in make_bert().parameters())  # it did shrink
    assert [w["width"] for w in arch["layers"]] != [w["of"] for w in arch["layers"]]
    small = callback.small
    assert [tuple(p.shape) for p in small.parameters()] == [
        tuple(p.shape) for p in expected.parameters()]
    for (name, a), b in zip(small.state_dict().items(), expected.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)

    held_out = make_examples(256, seed=2)
    ids = torch.stack([e["input_ids"] for e in held_out])
    labels = torch.stack([e["labels"] for e in held_out])
    model.eval()
    with torch.no_grad():  # exact shrink: the shrunk BERT's logits are the gated BERT's
        logits = small.eval()(ids).logits
        assert (logits.argmax(1) == labels).float().mean() > 0.9  # it learned the task
        torch.testing.assert_close(logits, model(ids).logits, rtol=0, atol=1e-5)
        torch.testing.assert_close(logits, expected.eval()(ids).logits, rtol=0, atol=1e-5)
        loaded = al.load(tmp_path / "small", model=make_bert()).eval()
        torch.testing.assert_close(loaded(ids).logits, logits, rtol=0, atol=0)

    logged = [e for e in trainer.state.log_history if "archlearn/params" in e]
    assert len(logged) == EPOCHS and logged[-1]["archlearn/params"] == arch["params"]


def test_gradient_accumulation_and_a_missing_penalty_are_clear_errors(tmp_path):
    examples = make_examples(64)
    args = dict(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=BATCH,
                report_to=[], disable_tqdm=True, use_cpu=True, save_strategy="no")
    example = examples[0]["input_ids"][None]
    with pytest.raises(al.ArchlearnError, match="gradient_accumulation_steps"):
        ArchLearningTrainer(model=make_bert(), archlearning=ArchLearning(example),
                            args=transformers.TrainingArguments(
                                gradient_accumulation_steps=2, **args),
                            train_dataset=InOrder(examples)).train()
    plain = transformers.Trainer(model=make_bert(), args=transformers.TrainingArguments(**args),
                                 train_dataset=InOrder(examples), callbacks=[ArchLearning(example)])
    with pytest.raises(al.ArchlearnError, match="no structure penalty"):
        plain.train()
