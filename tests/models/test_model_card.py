"""Model cards (rrhf.models.model_card): every saved model folder gets a README.md that huggingface_hub reads back,
naming its base model, data and provenance, method and settings, and its metrics; evaluations add theirs."""

import pytest
from conftest import save_new_lm
from huggingface_hub import ModelCard

from rrhf.io import write_parquet
from rrhf.models.loading import load_causal_lm_for_training
from rrhf.models.model_card import CARD_FILE, add_evaluation, flat_metrics, write_model_card
from rrhf.training.language_model import collate_lm, lm_examples, lm_loss
from rrhf.training.loop import train_model

TRAINING = {"epochs": 1, "learning_rate": 1e-3, "batch_size": 4, "warmup_ratio": 0.0, "max_length": 64, "seed": 0}
EVALUATION = {"n": 16, "reward_mean": 0.25, "reward_sem": 0.05, "ppl": 12.5, "gold_reward_mean": None,
              "distinct_2": 0.5}


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, tokenizer_dir):
    return save_new_lm(tmp_path_factory.mktemp("base"), tokenizer_dir,
                       {"family": "llama", "n_layer": 1, "n_embd": 32, "n_head": 2, "n_positions": 128})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, base_dir, synthetic_frame):
    """An SFT model folder saved as the stage saves it: its data file records where it came from."""
    folder = tmp_path_factory.mktemp("sft")
    data = folder / "train.parquet"
    frame = synthetic_frame.head(8)
    write_parquet(frame, data, {"stage": "prepare_dataset", "dataset": {"source": "synthetic"}, "split": "train",
                                "spec": {"source": "synthetic", "num_pairs": 400}})
    model, tokenizer = load_causal_lm_for_training(str(base_dir))
    examples = lm_examples(tokenizer, list(frame["prompt"]), list(frame["chosen"]), 64, False)
    result = train_model(model, examples, [len(ids) for ids, _ in examples],
                         lambda batch: collate_lm(batch, tokenizer.pad_token_id), lm_loss, TRAINING,
                         {"mixed_precision": "no"})
    output = folder / "models" / "sft"
    build = {"training": TRAINING, "max_examples": 8}
    result.save(str(output), tokenizer, {"stage": "train_sft", "init": str(base_dir), "data": [str(data)],
                                         "build": build}, {"final_train_loss": 1.5, "held_out": {"accuracy": 0.75}})
    return output, data


def test_a_saved_model_folder_has_a_card_huggingface_hub_reads(trained, base_dir):
    output, data = trained
    card = ModelCard.load(output / CARD_FILE)
    assert card.data.base_model == str(base_dir) and card.data.library_name == "transformers"
    assert card.data.datasets == ["synthetic"] and {"rrhf-workflow", "sft"} <= set(card.data.tags)
    text = card.text
    assert f"# {output}" in text and "`train_sft` stage: supervised fine-tuning" in text
    assert f"`{data}`" in text and '"rows": 8' in text and '"stage": "prepare_dataset"' in text  # its provenance
    assert "max_examples: 8" in text and "learning_rate: 0.001" in text  # the config block, as YAML
    assert "| final_train_loss | 1.5 |" in text and "| held_out.accuracy | 0.75 |" in text
    assert "Not evaluated yet" in text


def test_the_same_run_writes_the_same_card(tmp_path, trained):
    _, data = trained
    provenance = {"stage": "train_sft", "init": "base", "data": [str(data)], "build": {"max_examples": 8}}
    cards = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        cards.append(write_model_card(tmp_path / name, "m", provenance, {"loss": 1.0}).read_bytes())
    assert cards[0] == cards[1] and b"loss" in cards[0]


def test_an_evaluation_adds_its_metrics_once(tmp_path, trained):
    output, _ = trained
    assert add_evaluation(output, "results/eval/sft/DP", EVALUATION, {"source": "synthetic"})
    assert add_evaluation(output, "results/eval/sft/DP", {**EVALUATION, "reward_mean": 0.5}, {"source": "synthetic"})
    card = ModelCard.load(output / CARD_FILE)
    assert card.text.count("### `results/eval/sft/DP`") == 1 and "| reward_mean | 0.5 |" in card.text
    assert "Not evaluated yet" not in card.text and "| gold_reward_mean | None |" in card.text
    indexed = {result.metric_type: result.metric_value for result in card.data.eval_results}
    assert indexed == {"reward_mean": 0.5, "ppl": 12.5, "distinct_2": 0.5}  # the None is not indexed
    assert all(result.dataset_type == "synthetic" for result in card.data.eval_results)
    # A second evaluation sits beside the first.
    assert add_evaluation(output, "results/eval/sft/other", EVALUATION)
    card = ModelCard.load(output / CARD_FILE)
    assert card.text.count("### `results/eval/") == 2 and len(card.data.eval_results) == 6
    assert card.text.index("## Evaluation") < card.text.index("### `results/eval/sft/DP`") < card.text.index("## Use")


def test_a_folder_this_workflow_did_not_write_is_left_alone(tmp_path, base_dir):
    assert not add_evaluation(base_dir, "results/eval/base/none", EVALUATION)
    assert not (base_dir / CARD_FILE).exists()
    (tmp_path / CARD_FILE).write_text("---\nlicense: mit\n---\n# someone's model\n")
    assert not add_evaluation(tmp_path, "results/eval/x/none", EVALUATION)
    assert (tmp_path / CARD_FILE).read_text() == "---\nlicense: mit\n---\n# someone's model\n"
    assert not add_evaluation("HuggingFaceTB/SmolLM2-135M-Instruct", "results/eval/x/none", EVALUATION)


def test_nested_metrics_are_named_by_their_path():
    assert flat_metrics({"a": 1, "b": {"c": {"d": 0.5}, "e": [1, 2]}, "f": "x"}) == {"a": 1, "b.c.d": 0.5, "f": "x"}
