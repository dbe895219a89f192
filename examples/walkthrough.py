# %% [markdown]
# # From one exemplar to a trained model, in Python
#
# The paper's path (EMNLP 2023, "Making Large Language Models Better Data Creators") on one
# dataset: create a training set with an LLM from one exemplar, check it, share it, train a small
# model on it and evaluate it in and out of distribution. With no API key it runs on the embedded
# default (SmolLM2-135M through llama.cpp, on this machine); set OPENAI_API_KEY, or pass
# base_url= and model=, to use a real model. Cells are marked `# %%` (VS Code, Jupyter, Spyder
# run them one by one); `python examples/walkthrough.py` runs them all.
#
# Run it from the repository's root, with the benchmark data in ../shared/data.

# %%
import os
from pathlib import Path

import creator
import trainer

DATA = Path(os.environ.get("WALKTHROUGH_DATA", "../shared/data"))
OUT = Path(os.environ.get("WALKTHROUGH_OUT", "out/walkthrough"))
human = dict(data_dir=str(DATA / "yesno_close"), data_name="strategyqa")

# %% [markdown]
# ## 1. Create: 60 examples, the tree setting, from one exemplar drawn from the train split

# %%
run = creator.create(**human, setting="tree", target=60, seed=1,
                     output=OUT / "train_tree.jsonl", overwrite=True)
print(f"{run.status}: {run.accepted}/{run.target} records from {run.requests} requests "
      f"({run.rate_limited} rate-limited), {run.prompt_tokens:,} + {run.completion_tokens:,} "
      f"tokens, ~${run.estimated_cost_usd:.4f}, model {run.model}")
print("rejected by reason:", run.summary.rejected)
print(run.records()[0])

# %% [markdown]
# ## 2. Check it beside the human data

# %%
quality = creator.report(run.output, reference=DATA / "yesno_close/strategyqa/dev.jsonl")
print(quality.table())

# %% [markdown]
# ## 3. As a Hugging Face dataset, and a folder ready for the hub

# %%
import datasets  # noqa: E402

created = run.to_dataset()
people = creator.read_dataset(DATA / "yesno_close/strategyqa/dev.jsonl")
both = datasets.concatenate_datasets([people, created])  # same features: no cast needed
print(created, both.features["label"], sep="\n")
shared = creator.export(run.output, OUT / "hub", report=quality, overwrite=True)
print("dataset folder:", shared.folder, "- push it with Dataset.push_to_hub or huggingface-cli")

# %% [markdown]
# ## 4. Train the small model on the created data (a short run: 1 epoch on a CPU)

# %%
model = trainer.train(**human, train_file=run.output, output_dir=OUT / "model",
                      num_train_epochs=1, max_eval_examples=64, max_seq_length=64,
                      per_device_train_batch_size=8, gradient_accumulation_steps=1,
                      warmup_steps=0)
print(f"dev accuracy {model.dev_acc:.3f}, test {model.test_acc}, best model {model.best_model_dir}")

# %% [markdown]
# ## 5. Evaluate in and out of distribution (CREAK is another yes/no dataset)

# %%
scores = trainer.evaluate(run_dir=OUT / "model", data_name=["strategyqa", "creak"])
for name, splits in scores.datasets.items():
    print(name, {split: (s.acc if s else None) for split, s in splits.items()})
