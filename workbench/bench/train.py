"""Fine-tuning throughput: our training loop (`workbench.training.fit`) against the Hugging Face `Trainer`.

`workbench bench train [--json] [--steps 20] [--warmup 3] [--batch-size 16] [--max-length 128] [--texts 256]`

Both loops fine-tune the same model (the offline default encoder all-MiniLM-L6-v2 + mean pooling + a linear head,
`workbench.methods.finetune.EncoderClassifier`, copied from one initial state for every run) on the same tokenized
texts (BESSTIE sentiment training rows under $WORKBENCH_DATA, else AfriSenti, else built-in synthetic sentences),
in one process with the same torch threads, and see the same batches in the same order: one seeded batch sampler
(length-grouped by default, `--batches random` for plain shuffled batches) and one dynamic-padding collate, handed to
`fit` as its `batch_sampler` and to the `Trainer` through its own `get_train_dataloader` (the Trainer's code, with the
batch sampler in place of its sampler). Same optimisation: AdamW (lr 5e-5, weight decay 0.01; ours decays every
parameter, the Trainer's default exempts biases and LayerNorm: the same kernel work), linear decay without warm-up,
gradient clipping at 1.0, no mixed precision, unweighted cross-entropy. The Trainer runs as configured for speed: no
evaluation, saving, logging or reporting, no progress bar, no dataloader workers, its default optimizer
(`adamw_torch_fused`; `--trainer-optim` picks another). Each loop runs `warmup + steps` optimisation steps; the
clock covers the last `steps` (from the end of the warm-up steps to the end of the last step, data loading
included). Rounds alternate which loop goes first; the medians are reported, and `ratio` = ours / Trainer. Each
round pairs one run of each loop, so `ratio_low` / `ratio_high` give the 95% t-interval of the geometric mean of
the per-round ratios, and `reading` says `ours faster`, `Trainer faster`, or `parity` when the interval spans 1:
at equal kernel work the two loops differ by their per-step overhead, a few milliseconds in a step of about half a
second on 2 CPU cores, so a ratio a few per cent either side of 1 is the machine's run-to-run noise.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from workbench.bench import set_up
from workbench.claims import t_interval
from workbench.methods.finetune import (
    LengthGroupedBatchSampler,
    PadCollator,
    load_classifier,
    padding_fraction,
    token_items,
)
from workbench.training import TrainConfig, fit, make_optimizer

LR = 5e-5
WEIGHT_DECAY = 0.01
WORDS = (
    "the food was great lovely staff awful service cold rude slow friendly clean dirty room view price value "
    "would come back never again highly recommend disappointed amazing terrible okay average booking hotel "
    "beach breakfast noise location helpful manager waited hours perfect experience"
).split()


def bench_texts(n: int, seed: int = 0) -> tuple[list[str], list[int], str]:
    """`n` labelled texts: a stratified sample of BESSTIE sentiment training rows, else of one AfriSenti language's
    training rows, else seeded synthetic sentences (lengths 3..60 words); and where they came from."""
    from workbench.data.sampling import stratified_sample

    try:
        from workbench.data.besstie import load_besstie

        frame, source = load_besstie("Sentiment", split="train"), "BESSTIE Sentiment train"
    except Exception:  # absent data is reported by the data commands; here it only means: use the next source
        frame = None
    if frame is None or len(frame) < n:
        try:
            from workbench.data.afrisenti import afrisenti_languages, load_afrisenti

            language = next(lang for lang in afrisenti_languages() if len(load_afrisenti(lang)) >= n)
            frame, source = load_afrisenti(language), f"AfriSenti {language} train"
        except Exception:
            frame = None
    if frame is not None and len(frame) >= n:
        sample = stratified_sample(frame, n, seed)
        return sample["text"].tolist(), [int(x) for x in sample["label"]], source
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 61)))) for _ in range(n)]
    return texts, [i % 2 for i in range(n)], "synthetic sentences (no BESSTIE or AfriSenti data found)"


class CountingCollate:
    """Wraps a collate function and records each batch's size, in order: step i trained on `sizes[i]` rows."""

    def __init__(self, collate: Callable):
        self.collate, self.sizes = collate, []

    def __call__(self, items):
        self.sizes.append(len(items))
        return self.collate(items)


class StepClock:
    """Wall-clock time at the end of every optimisation step (after a device synchronisation on CUDA)."""

    def __init__(self, device: torch.device):
        self.device, self.times = device, []

    def __call__(self, *_) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.times.append(time.perf_counter())

    def throughput(self, sizes: Sequence[int], warmup: int, steps: int) -> dict[str, float]:
        """Sequences per second over steps warmup+1 .. warmup+steps."""
        if len(self.times) < warmup + steps:
            raise RuntimeError(f"only {len(self.times)} steps ran, {warmup + steps} expected")
        seconds = self.times[warmup + steps - 1] - self.times[warmup - 1]
        rows = int(sum(sizes[warmup : warmup + steps]))
        return {"seq_per_s": rows / seconds, "seconds": seconds, "rows": rows}


def _make_sampler(kind: str, lengths: Sequence[int], batch_size: int, seed: int):
    """A fresh seeded batch sampler: every fresh one yields the same batches."""
    if kind == "length":
        return LengthGroupedBatchSampler(lengths, batch_size, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.BatchSampler(
        torch.utils.data.RandomSampler(range(len(lengths)), generator=generator), batch_size, drop_last=False
    )


def run_ours(model, items, sampler, collate, settings: dict, device: torch.device) -> dict[str, float]:
    """Our loop: `fit` with the bench's batch sampler and collate, timed per step."""
    clock, counting = StepClock(device), CountingCollate(collate)
    config = TrainConfig(
        epochs=10**6,
        lr=LR,
        batch_size=settings["batch_size"],
        weight_decay=WEIGHT_DECAY,
        seed=settings["seed"],
        weighted_loss=False,
        max_grad_norm=1.0,
        device=str(device),
        progress=False,
        max_steps=settings["warmup"] + settings["steps"],
        schedule="linear",
        precision="no",
    )
    fit(model, items, None, config, collate_fn=counting, batch_sampler=sampler, on_step=clock)
    return clock.throughput(counting.sizes, settings["warmup"], settings["steps"])


def run_trainer(model, items, sampler, collate, settings: dict, device: torch.device) -> dict[str, float]:
    """The Hugging Face `Trainer` on the same batches, timed per step by a callback."""
    from torch.utils.data import DataLoader
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    clock, counting = StepClock(device), CountingCollate(collate)

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            clock()

    class SameBatchesTrainer(Trainer):
        """The Trainer's own train dataloader (prepared by its Accelerator), with the bench's batch sampler."""

        def get_train_dataloader(self) -> DataLoader:
            loader = DataLoader(self.train_dataset, batch_sampler=sampler, collate_fn=counting, num_workers=0)
            return self.accelerator.prepare(loader)

    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=settings["batch_size"],
            max_steps=settings["warmup"] + settings["steps"],
            learning_rate=LR,
            weight_decay=WEIGHT_DECAY,
            lr_scheduler_type="linear",
            warmup_steps=0,
            max_grad_norm=1.0,
            optim=settings["trainer_optim"],
            seed=settings["seed"],
            report_to=[],
            save_strategy="no",
            eval_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            dataloader_num_workers=0,
            dataloader_pin_memory=device.type == "cuda",
            remove_unused_columns=False,
            use_cpu=device.type == "cpu",
        )
        trainer = SameBatchesTrainer(model=model, args=args, train_dataset=items, callbacks=[Clock()])
        trainer.remove_callback(PrinterCallback)  # it prints the final metrics: not part of training, not JSON
        trainer.train()
    return clock.throughput(counting.sizes, settings["warmup"], settings["steps"])


def ratio_interval(round_ratios: Sequence[float]) -> tuple[float, float]:
    """95% t-interval of the geometric mean of paired per-round ratios (NaN, NaN with fewer than 2 rounds)."""
    if len(round_ratios) < 2:
        return math.nan, math.nan
    low, high = t_interval(np.log(np.asarray(round_ratios, float)))
    return math.exp(low), math.exp(high)


def ratio_reading(low: float, high: float) -> str:
    """`ours faster` / `Trainer faster` when the interval excludes 1, else `parity` (or `one round: no interval`)."""
    if math.isnan(low):
        return "one round: no interval"
    return "ours faster" if low > 1 else "Trainer faster" if high < 1 else "parity"


def measure(
    steps: int = 20,
    warmup: int = 3,
    batch_size: int = 16,
    max_length: int = 128,
    texts: int = 256,
    rounds: int = 5,
    encoder: str = "minilm",
    batches: str = "length",
    trainer_optim: str = "adamw_torch_fused",
    seed: int = 0,
    device: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, object]:
    """Run both loops `rounds` times (alternating which goes first) and return their throughputs and the ratio."""
    if steps < 1 or warmup < 1 or rounds < 1:
        raise ValueError("steps, warmup and rounds must be at least 1 (the warm-up steps are excluded from timing)")
    device_ = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    text_list, labels, source = bench_texts(texts, seed)
    base, tokenizer = load_classifier(encoder, num_classes=max(labels) + 1, seed=seed)
    base.to(device_)
    items = token_items(tokenizer, text_list, labels, max_length)
    lengths = [len(item["input_ids"]) for item in items]
    collate = PadCollator(tokenizer.pad_token_id or 0)
    settings = dict(
        steps=steps, warmup=warmup, batch_size=batch_size, seed=seed, trainer_optim=trainer_optim, batches=batches
    )
    per_epoch = len(_make_sampler(batches, lengths, batch_size, seed))
    timed = []  # the batches of the timed steps (the same for both loops)
    probe = _make_sampler(batches, lengths, batch_size, seed)
    while len(timed) < warmup + steps:
        timed.extend(list(iter(probe)))
    timed = timed[warmup : warmup + steps]
    runners = {"ours": run_ours, "trainer": run_trainer}
    results: dict[str, list[dict[str, float]]] = {"ours": [], "trainer": []}
    for r in range(rounds):
        for name in ("ours", "trainer") if r % 2 == 0 else ("trainer", "ours"):
            model = copy.deepcopy(base)
            sampler = _make_sampler(batches, lengths, batch_size, seed)
            results[name].append(runners[name](model, items, sampler, collate, settings, device_))
            if progress:
                progress(f"round {r + 1}/{rounds} {name}: {results[name][-1]['seq_per_s']:.2f} seq/s")
            del model
    round_ratios = [o["seq_per_s"] / t["seq_per_s"] for o, t in zip(results["ours"], results["trainer"])]
    low, high = ratio_interval(round_ratios)
    ours = statistics.median(x["seq_per_s"] for x in results["ours"])
    trainer = statistics.median(x["seq_per_s"] for x in results["trainer"])
    params = [p for p in base.parameters() if p.requires_grad]
    ours_optimizer = make_optimizer(params, TrainConfig(lr=LR, device=str(device_)))
    ours_impl = "fused" if ours_optimizer.defaults.get("fused") else "foreach"
    return {
        "meaningful": encoder != "tiny",  # a random 2-layer model measures the loops' overhead, not fine-tuning
        "ours_seq_per_s": ours,
        "trainer_seq_per_s": trainer,
        "ratio": ours / trainer,
        "ratio_low": None if math.isnan(low) else low,  # JSON has no NaN
        "ratio_high": None if math.isnan(high) else high,
        "reading": ratio_reading(low, high),
        "round_ratios": round_ratios,
        "ours_rounds_seq_per_s": [x["seq_per_s"] for x in results["ours"]],
        "trainer_rounds_seq_per_s": [x["seq_per_s"] for x in results["trainer"]],
        "steps": steps,
        "warmup_steps": warmup,
        "rounds": rounds,
        "batch_size": batch_size,
        "max_length": max_length,
        "texts": len(items),
        "data": source,
        "encoder": encoder,
        "batches": batches,
        "batches_per_epoch": per_epoch,
        "timed_rows": int(sum(len(b) for b in timed)),
        "timed_tokens_per_step": float(np.mean([len(b) * max(lengths[i] for i in b) for b in timed])),
        "timed_padding_fraction": padding_fraction(timed, lengths),
        "ours_optimizer": f"torch.optim.AdamW ({ours_impl})",
        "trainer_optim": trainer_optim,
        "device": str(device_),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
    }


def main(argv: list[str] | None = None) -> int:
    """`workbench bench train [--json] [--steps N] ...`."""
    parser = argparse.ArgumentParser(prog="workbench bench train", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed optimisation steps per run (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before the clock starts (default 3)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128, help="truncation length in tokens (default 128)")
    parser.add_argument("--texts", type=int, default=256, help="training texts (default 256)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="paired runs of each loop, alternating order (default 5; the interval needs 2)",
    )
    parser.add_argument("--encoder", default="minilm", help="encoder name (default: the offline default, minilm)")
    parser.add_argument("--batches", choices=("length", "random"), default="length", help="batch sampler for both")
    parser.add_argument("--trainer-optim", default="adamw_torch_fused", help="the Trainer's `optim` (its default)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    set_up(args.threads)
    result = measure(
        steps=args.steps,
        warmup=args.warmup,
        batch_size=args.batch_size,
        max_length=args.max_length,
        texts=args.texts,
        rounds=args.rounds,
        encoder=args.encoder,
        batches=args.batches,
        trainer_optim=args.trainer_optim,
        device=args.device,
        progress=None if args.json else print,
    )
    if not result["meaningful"]:
        print(
            "NOTE: figures not meaningful: the tiny random encoder times loop overhead, not fine-tuning",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{result['encoder']} + head, {result['data']}: {result['texts']} texts, batch {result['batch_size']}, "
        f"max length {result['max_length']}, {result['batches']} batches (padding {result['timed_padding_fraction']:.1%}"
        f" of timed tokens), {result['steps']} timed steps after {result['warmup_steps']}, {result['rounds']} rounds, "
        f"{result['device']} x{result['torch_threads']} threads"
    )
    print(f"ours    (fit, {result['ours_optimizer']}):        {result['ours_seq_per_s']:8.2f} seq/s")
    print(f"Trainer (optim={result['trainer_optim']}):          {result['trainer_seq_per_s']:8.2f} seq/s")
    print(
        f"ratio ours / Trainer: {result['ratio']:.3f}  (per round: {', '.join(f'{r:.3f}' for r in result['round_ratios'])})"
    )
    if result["ratio_low"] is not None:
        interval = f"[{result['ratio_low']:.3f}, {result['ratio_high']:.3f}]"
        print(f"95% interval of the ratio over the paired rounds: {interval}: {result['reading']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
