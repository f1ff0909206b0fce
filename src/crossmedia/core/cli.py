"""The ``crossmedia`` command.

    crossmedia fit|validate|test|predict -c zoo/hashing/csq.yaml [--trainer.max_epochs 3 ...]
    crossmedia fit -c csq                     # a zoo name works in place of the card path
    crossmedia zoo list|show NAME|eval NAME|export RUN --name NAME|default TASK
    crossmedia data list|prepare NAME [--source DIR]|check DIR
    crossmedia summarize VIDEO [--model sum-gda]   # and other commands tasks contribute

``fit`` & co. are LightningCLI (subclassed): a zoo card given with ``-c`` contributes its
``config`` section. Each run gets its own folder, ``runs/<name>/`` or, when that holds a run,
``runs/<name>-2/``, … (config.yaml, checkpoints/last.ckpt, samples/, wandb/; see core/runs.py),
and ``--ckpt_path last`` resumes the latest of them. Training stops at the first non-finite
loss (core/callbacks.py: FiniteLossGuard). The project's own errors (a bad card, weights, data,
run folder, a NaN loss) end the command with one line, ``crossmedia fit: <message>``, and exit
code 1; ``CROSSMEDIA_TRACEBACK=1`` shows the traceback instead.
"""
from __future__ import annotations

import atexit
import os
import sys
import tempfile
import traceback
from pathlib import Path

import yaml

__all__ = ["main"]  # CrossmediaCLI is built inside _lightning_cli (it closes over the card name)

_LIGHTNING_COMMANDS = {"fit", "validate", "test", "predict"}


def _card_config(argv: list[str]) -> tuple[list[str], str | None]:
    """Replace ``-c CARD`` (a card file or zoo name) by a file holding the card's config section."""
    from crossmedia.core.cards import find_cards, read_card
    from crossmedia.core.registry import import_class

    out, name = [], None
    i = 0
    while i < len(argv):
        arg = argv[i]
        value = None
        if arg in ("-c", "--config") and i + 1 < len(argv):
            value, i = argv[i + 1], i + 2
        elif arg.startswith("--config="):
            value, i = arg.split("=", 1)[1], i + 1
        else:
            out.append(arg)
            i += 1
            continue
        path = Path(value)
        if not path.is_file():
            path = _card_path(value, find_cards())
        raw = yaml.safe_load(path.read_text()) if path.is_file() else None
        if isinstance(raw, dict) and "config" in raw and "weights" in raw:
            card = read_card(path)
            for part in ("model", "data"):  # refused in one line before LightningCLI builds anything
                import_class(card.class_path(part), part=part, source=card.path)
            name = card.name
            handle = tempfile.NamedTemporaryFile("w", suffix=f"-{card.name}.yaml", delete=False)
            yaml.safe_dump(card.config, handle)
            handle.close()
            atexit.register(Path(handle.name).unlink, missing_ok=True)
            value = handle.name
        out += ["--config", value]
    return out, name


def _card_path(value: str, cards: dict[str, Path]) -> Path:
    """The card a ``-c`` value that is not a file names, or a CardError listing close names."""
    from crossmedia.core.cards import CardError, get_card

    if value in cards:
        return cards[value]
    try:
        get_card(Path(value).stem)  # raises with the closest names
    except CardError as err:
        raise CardError(f"-c {value}: no such file, and {err}") from None
    raise CardError(f"-c {value}: no such file (the zoo name is {Path(value).stem!r})")


def _lightning_cli(argv: list[str]) -> None:
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.cli import LightningCLI, SaveConfigCallback
    from pytorch_lightning.utilities import rank_zero_info

    from crossmedia.core.callbacks import FiniteLossGuard, ResumableCheckpoint
    from crossmedia.core.loggers import make_default_logger
    from crossmedia.core.runs import claim_run_dir, latest_run_dir

    argv, card_name = _card_config(argv)

    class CrossmediaCLI(LightningCLI):
        """LightningCLI with crossmedia defaults: run folder, W&B logger, resumable checkpoints."""

        def add_arguments_to_parser(self, parser) -> None:
            parser.add_argument("--run_name", type=str, default=card_name or "run",
                                help="run folder name under runs/ (default: the card's name)")
            parser.add_argument("--checkpoint_every_n_steps", type=int, default=50,
                                help="refresh checkpoints/last.ckpt this often (mid-epoch resume)")
            parser.add_argument("--stop_on_non_finite", type=bool, default=True,
                                help="stop at the first NaN/inf loss, gradient or weight (FiniteLossGuard)")

        def _parse_ckpt_path(self) -> None:
            """``validate``/``test``/``predict --ckpt_path last``: name the latest run's last.ckpt before
            Lightning reads the checkpoint's hyper-parameters into the model's config (a head rebuilt
            for the data's classes at fit is then built so again, without --model.init_args flags)."""
            sub = self.config.get("subcommand")
            config = self.config.get(sub) if sub else None
            trainer = config.get("trainer") if config is not None else None
            if config is not None and sub != "fit" and config.get("ckpt_path") == "last" \
                    and (trainer.get("default_root_dir") if trainer is not None else None) is None:
                latest = latest_run_dir(Path("runs"), config.get("run_name"))
                if latest is not None and (latest / "checkpoints" / "last.ckpt").is_file():
                    config["ckpt_path"] = str(latest / "checkpoints" / "last.ckpt")
            super()._parse_ckpt_path()

        def instantiate_trainer(self, **kwargs) -> pl.Trainer:
            config = self._get(self.config, "trainer", default={})
            extra_callbacks = [self._get(self.config_init, c) for c in self._parser(self.subcommand).callback_keys]
            trainer_config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
            run_name = self._get(self.config, "run_name")
            root = self._run_folder(run_name, config.get("default_root_dir"))
            trainer_config["default_root_dir"] = str(root)
            if trainer_config.get("logger") in (None, True):
                trainer_config["logger"] = make_default_logger(root, run_name)
            callbacks = list(trainer_config.get("callbacks") or [])
            if trainer_config.get("enable_checkpointing", True) is not False and not any(
                isinstance(cb, ModelCheckpoint) for cb in callbacks + extra_callbacks
            ):
                every = self._get(self.config, "checkpoint_every_n_steps")
                callbacks.append(ResumableCheckpoint(dirpath=root / "checkpoints", every_n_train_steps=every))
            if self._get(self.config, "stop_on_non_finite") and not any(
                isinstance(cb, FiniteLossGuard) for cb in callbacks + extra_callbacks
            ):
                callbacks.append(FiniteLossGuard())
            trainer_config["callbacks"] = callbacks
            trainer_config["strategy"] = self._strategy(trainer_config)
            return self._instantiate_trainer(trainer_config, extra_callbacks)

        def _strategy(self, trainer_config: dict):
            """Plain DDP (``ddp``, or ``auto`` on several devices) becomes ``ddp_find_unused_parameters_true``
            for a module that declares ``ddp_find_unused_parameters`` (core/task.py); anything else is kept."""
            strategy = trainer_config.get("strategy", "auto")
            devices, nodes = trainer_config.get("devices", "auto"), trainer_config.get("num_nodes", 1) or 1
            several = str(devices) not in ("1", "auto", "None", "[0]") or int(nodes) > 1
            wants = getattr(type(self.model), "ddp_find_unused_parameters", False)
            if wants and (strategy == "ddp" or (strategy == "auto" and several)):
                return "ddp_find_unused_parameters_true"
            return strategy

        def _run_folder(self, run_name: str, root: str | None) -> Path:
            """This run's own folder (core/runs.py). ``fit --ckpt_path last`` resumes in the latest
            folder of the name; ``validate``/``test``/``predict --ckpt_path last`` read that
            folder's last.ckpt but write into a folder of their own."""
            last = self._get(self.config, "ckpt_path") == "last"
            if last and self.subcommand != "fit" and root is None:
                latest = latest_run_dir(Path("runs"), run_name)
                if latest is not None:
                    self.config_init[self.subcommand]["ckpt_path"] = str(latest / "checkpoints" / "last.ckpt")
            resume = last and self.subcommand == "fit"
            folder = claim_run_dir(runs=Path("runs"), name=run_name, root=root, resume=resume)
            rank_zero_info(f"run folder: {folder}")
            return folder

    CrossmediaCLI(
        pl.LightningModule,
        pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=SaveConfigCallback,
        save_config_kwargs={"overwrite": True},
        args=argv,
        auto_configure_optimizers=False,
    )


def _for_people(err: Exception) -> bool:
    """An error to answer with its one-line message, not a traceback: one of the project's own
    error types (CardError, WeightsError, UnknownDatasetError, NonFiniteError, RunFolderError …),
    or a ValueError / LookupError / OSError that the project's code raised itself. A TypeError,
    or anything raised inside torch or Lightning, is a bug to read the traceback of."""
    if type(err).__module__.startswith("crossmedia."):
        return True
    frames = traceback.extract_tb(err.__traceback__)
    package = str(Path(__file__).resolve().parents[1])
    return (isinstance(err, (ValueError, LookupError, OSError)) and bool(frames)
            and str(Path(frames[-1].filename).resolve()).startswith(package))


def task_commands() -> dict:
    """Commands tasks contribute (``COMMANDS`` in ``crossmedia/tasks/<task>/cli.py``), by name.

    Found by walking the tasks package, so the core never names a task.
    """
    import importlib
    import importlib.util
    import pkgutil

    import crossmedia.tasks

    commands = {}
    for info in pkgutil.iter_modules(crossmedia.tasks.__path__):
        name = f"crossmedia.tasks.{info.name}.cli"
        if info.ispkg and importlib.util.find_spec(name) is not None:
            commands.update(getattr(importlib.import_module(name), "COMMANDS", {}))
    return commands


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "zoo":
        from crossmedia.core.zoo_cli import zoo_main

        return zoo_main(argv[1:])
    if argv and argv[0] == "data":
        from crossmedia.data.cli import main as data_main

        return data_main(argv[1:])
    if not argv or argv[0] in ("-h", "--help") or argv[0] in _LIGHTNING_COMMANDS:
        if not argv or argv[0] in ("-h", "--help"):
            print(__doc__)
            if not argv:
                return 2
        try:
            _lightning_cli(argv)
        except Exception as err:
            if not _for_people(err) or os.environ.get("CROSSMEDIA_TRACEBACK"):
                raise
            message = err.args[0] if isinstance(err, KeyError) and err.args else err  # KeyError quotes its str
            print(f"crossmedia {argv[0]}: {' '.join(str(message).split())}", file=sys.stderr)
            return 1
        return 0
    extra = task_commands()
    if argv[0] in extra:
        return extra[argv[0]](argv[1:])
    known = ", ".join(["fit", "validate", "test", "predict", "zoo", "data", *sorted(extra)])
    print(f"crossmedia: unknown command {argv[0]!r}; commands: {known}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
