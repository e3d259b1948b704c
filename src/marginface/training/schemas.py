"""Config validation at start: each `_target_` node is checked against its target's signature.

The schema of a node is the signature of the class or function it builds: its keys must be
parameters (a typo such as `+loss.margn=0.3` is named, with the valid keys and the closest one),
its values must fit the annotations (`loss.margin=abc` is rejected), required parameters must be
set (`data.dataset.root=???`), and the head is built once on a dummy size so that its own range
checks (`loss.scale=-1`) run too. All of it runs before any data is read, and every problem is
reported at once. A new head, backbone or data set is covered the moment its config exists: there
is no second copy of its parameters to keep in step.

Hydra itself already refuses `loss.margn=0.3` (a key absent from the composed config) when it
composes; its message suggests `+loss.margn=0.3`, which this module then rejects with the list.
"""

from __future__ import annotations

import collections.abc as abc
import difflib
import inspect
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

#: keys Hydra's instantiate reads itself
HYDRA_KEYS = frozenset({"_target_", "_partial_", "_recursive_", "_convert_", "_args_"})

#: arguments train() passes at instantiation, per top-level group: not expected in the config
PROVIDED = {
    "loss": frozenset({"embedding_dim", "num_classes"}),
    "trainer": frozenset({"callbacks", "logger", "default_root_dir", "plugins"}),
}

#: groups a training config must build (`data=bin` is a verification set: evaluation only)
REQUIRED_TARGETS = ("data", "backbone", "loss", "optimizer", "trainer")

#: mappings passed on as keyword arguments: (class, parameter) -> (function, its injected arguments)
NESTED_KWARGS = {
    ("marginface.data.datamodule.FaceDataModule", "augment"): (
        "marginface.data.transforms.augment",
        frozenset({"images", "generator"}),
    ),
}

_MISSING = "???"
_PRIMITIVES = (bool, int, float, str, type(None))


class ConfigError(ValueError):
    """The config has keys, values or types its targets cannot take; the message lists each one."""


def validate_config(cfg: DictConfig, check_head: bool = True) -> None:
    """Raise ConfigError listing every problem of a training config (see the module docstring)."""
    problems: list[str] = []
    for group in REQUIRED_TARGETS:
        node = cfg.get(group)
        if not isinstance(node, DictConfig) or "_target_" not in node:
            problems.append(
                f"{group}: no _target_ to build; training needs a {group} group that builds an "
                f"object (data=bin and data=lfw_pairs are verification sets for scripts/evaluate.py only)"
            )
    tree = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    _walk(tree, "", problems)
    problems += _check_top_level(tree)
    if check_head and not any(p.startswith("loss") for p in problems):
        problems += _probe_head(cfg)
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(
            f"invalid config ({len(problems)} problem{'s' if len(problems) > 1 else ''}), "
            f"found before any data was read:\n{listed}\n"
            "The defaults are in conf/<group>/<option>.yaml; docs/reliability.md explains the checks."
        )


# -- walking the tree ---------------------------------------------------------------------------
def _walk(node: Any, path: str, problems: list[str]) -> None:
    if isinstance(node, dict):
        if "_target_" in node:
            problems += check_node(node, path)
        for key, value in node.items():
            if key not in HYDRA_KEYS:
                _walk(value, f"{path}.{key}" if path else str(key), problems)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _walk(value, f"{path}[{i}]", problems)


def _group(path: str) -> str:
    return path.split(".", 1)[0].split("[", 1)[0]


def check_node(node: dict, path: str) -> list[str]:
    """Problems of one `_target_` node (a resolved dict) at `path`: keys, types, required values."""
    target = node["_target_"]
    try:
        obj = get_object(str(target))
    except Exception as error:  # noqa: BLE001 - any import failure means the same to the user
        return [f"{path}._target_={target!r} cannot be imported ({type(error).__name__}: {error})"]
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return []  # builtins without a signature: nothing to check against
    params = {
        name: p
        for name, p in signature.parameters.items()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    open_ended = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    hints = _type_hints(obj)
    provided = PROVIDED.get(path, frozenset())
    problems = []
    for key, value in node.items():
        if key in HYDRA_KEYS:
            continue
        if key not in params:
            if not open_ended:
                problems.append(_unknown_key(path, key, target, params))
            continue
        if value == _MISSING:
            problems.append(f"{path}.{key} is required (???): set it, e.g. {path}.{key}=<value>")
        elif not (isinstance(value, dict) and "_target_" in value):
            expected = hints.get(key, Any)
            if not accepts(expected, value):
                problems.append(
                    f"{path}.{key}={value!r} ({type(value).__name__}): {target} expects "
                    f"{type_text(expected)}"
                )
        problems += _nested(obj, key, value, f"{path}.{key}")
    if not node.get("_partial_", False):
        for name, p in params.items():
            if p.default is p.empty and name not in node and name not in provided:
                problems.append(f"{path}.{name} is required by {target} but not set")
    return problems


def _unknown_key(path: str, key: str, target: str, params: dict) -> str:
    valid = sorted(params)
    close = difflib.get_close_matches(str(key), valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{path}.{key}: {target} has no parameter {key!r}{hint}; valid keys: {', '.join(valid)}"


def _nested(obj: Any, key: str, value: Any, path: str) -> list[str]:
    """Check a mapping that `obj` passes on as keyword arguments (e.g. data.augment)."""
    if not isinstance(value, dict) or not isinstance(obj, type):
        return []
    for (owner, param), (function, injected) in NESTED_KWARGS.items():
        if param != key:
            continue
        try:
            if not issubclass(obj, get_object(owner)):
                continue
        except Exception:  # noqa: BLE001 - an owner that cannot be imported owns nothing here
            continue
        target = get_object(function)
        params = {
            name: p
            for name, p in inspect.signature(target).parameters.items()
            if name not in injected
        }
        hints = _type_hints(target)
        problems = []
        for name, item in value.items():
            if name not in params:
                problems.append(_unknown_key(path, name, function, params))
            elif not accepts(hints.get(name, Any), item):
                problems.append(
                    f"{path}.{name}={item!r} ({type(item).__name__}): {function} expects "
                    f"{type_text(hints[name])}"
                )
        return problems
    return []


def _check_top_level(tree: dict) -> list[str]:
    """The training keys that are not objects: seed, fold, criterion, ckpt_path."""
    from marginface.heads.losses import CRITERIA

    problems = []
    seed = tree.get("seed")
    if not (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0):
        problems.append(f"seed={seed!r}: expected an integer >= 0")
    data = tree.get("data") if isinstance(tree.get("data"), dict) else {}
    fold, folds = data.get("fold", tree.get("fold")), data.get("num_folds")
    split = data.get("split", "folds")
    if split == "folds" and isinstance(fold, int) and isinstance(folds, int):
        if not 0 <= fold < folds:
            problems.append(f"fold={fold}: expected 0 <= fold < data.num_folds={folds}")
    elif split == "random" and isinstance(fold, int) and fold < 0:
        problems.append(f"fold={fold}: expected the number of a random split, >= 0")
    elif split == "unseen":
        problems.append(
            "data.split=unseen: every identity is open-set, so there is nothing to train on; "
            "it is for scripts/evaluate.py (train with data.split=folds or random)"
        )
    criterion = tree.get("criterion", "ce")
    if criterion not in CRITERIA:
        problems.append(f"criterion={criterion!r}: expected one of {', '.join(CRITERIA)}")
    ckpt = tree.get("ckpt_path")
    if ckpt not in (None, "", "last") and not Path(str(ckpt)).expanduser().is_file():
        problems.append(
            f"ckpt_path={ckpt}: no such checkpoint (ckpt_path=last resumes the run in hydra.run.dir)"
        )
    problems += _check_evidence_keys(tree, data)
    return problems


def _check_evidence_keys(tree: dict, data: dict) -> list[str]:
    """init_from, data.train_identities, eval.distractors and eval.distractor_root."""
    problems = []
    init = tree.get("init_from")
    if init not in (None, "") and not Path(str(init)).expanduser().is_file():
        problems.append(
            f"init_from={init}: no such checkpoint (a training run keeps its weights in "
            "<run dir>/checkpoints/last.ckpt)"
        )
    freeze = tree.get("freeze")
    if freeze not in (None, []):
        if not (isinstance(freeze, list) and all(isinstance(n, str) and n for n in freeze)):
            problems.append(
                f"freeze={freeze!r}: expected a list of backbone part names, e.g. [stem,down,blocks]"
            )
        elif init in (None, ""):
            problems.append(
                f"freeze={freeze}: without init_from the frozen layers would keep their random "
                "initial weights; set init_from=PATH (a pretrained run's checkpoints/last.ckpt)"
            )
    count = data.get("train_identities")
    if count is not None and not (
        isinstance(count, int) and not isinstance(count, bool) and count >= 2
    ):
        problems.append(
            f"data.train_identities={count!r}: expected null (all) or an integer >= 2 "
            "(at most the split's training identities)"
        )
    ev = tree.get("eval") if isinstance(tree.get("eval"), dict) else {}
    problems += score_norm_problems(ev)
    k = ev.get("distractors", 0)
    if not (isinstance(k, int) and not isinstance(k, bool) and k >= 0):
        problems.append(f"eval.distractors={k!r}: expected an integer >= 0")
    root = ev.get("distractor_root")
    if root not in (None, "") and not Path(str(root)).expanduser().is_dir():
        problems.append(
            f"eval.distractor_root={root}: no such folder (one sub-folder per distractor identity)"
        )
    elif root not in (None, "") and isinstance(k, int) and k > 0:
        folders = sum(e.is_dir() for e in os.scandir(Path(str(root)).expanduser()))
        if folders < k:
            problems.append(
                f"eval.distractors={k}: eval.distractor_root={root} holds {folders} sub-folders; "
                f"set eval.distractors <= {folders}"
            )
    elif isinstance(k, int) and k > 0 and not _generates_identities(data.get("dataset")):
        target = (data.get("dataset") or {}).get("_target_")
        problems.append(
            f"eval.distractors={k}: data.dataset ({target}) cannot generate new identities; set "
            "eval.distractor_root=PATH (a folder of identity sub-folders, data/README.md)"
        )
    return problems


def score_norm_problems(ev: dict) -> list[str]:
    """What is wrong with eval.score_norm and eval.score_norm_top_k (empty when nothing is)."""
    problems = []
    method = ev.get("score_norm")
    if method not in (None, "snorm"):
        problems.append(
            f"eval.score_norm={method!r}: expected null or 'snorm' (docs/metrics.md, Score normalisation)"
        )
    k = ev.get("score_norm_top_k")
    if k is not None and not (isinstance(k, int) and not isinstance(k, bool) and k >= 2):
        problems.append(
            f"eval.score_norm_top_k={k!r}: expected null (the whole cohort) or an integer >= 2"
        )
    return problems


def _generates_identities(dataset: Any) -> bool:
    """Whether data.dataset builds a generator that takes num_identities (distractors from it)."""
    if not isinstance(dataset, dict) or "_target_" not in dataset:
        return False
    try:
        params = inspect.signature(get_object(str(dataset["_target_"]))).parameters
    except Exception:  # noqa: BLE001 - an unimportable target is reported by check_node
        return True
    return {"num_identities", "images_per_identity"} <= set(params)


def _probe_head(cfg: DictConfig) -> list[str]:
    """Build the head on a dummy size so its range checks (scale > 0, margin < pi, ...) run now.

    It is built with the run's `head` options, so a head that cannot be sharded or class-sampled is
    refused here too, before any data is read.
    """
    from marginface.training.factory import build_head

    dim = OmegaConf.select(cfg, "backbone.embedding_dim", default=None)
    try:
        # 3 classes: the fewest every head takes (AdaCos' scale sqrt(2) ln(C - 1) is 0 at C = 2)
        dim = int(dim) if isinstance(dim, int) else 8
        build_head(cfg.loss, dim, 3, cfg.get("head"))
    except Exception as error:  # noqa: BLE001 - reported with the key group, whatever it is
        cause = error.__cause__ or error
        return [f"loss ({cfg.loss.get('_target_')}): {cause}"]
    return []


# -- types --------------------------------------------------------------------------------------
def _type_hints(obj: Any) -> dict[str, Any]:
    """Evaluated annotations of a function or a class's __init__; unreadable ones become Any."""
    function = obj.__init__ if isinstance(obj, type) else obj
    try:
        return typing.get_type_hints(function)
    except Exception:  # noqa: BLE001 - names imported only for type checkers: check key by key
        hints = {}
        namespace = getattr(inspect.unwrap(function), "__globals__", {})
        for name, annotation in getattr(function, "__annotations__", {}).items():
            try:
                hints[name] = (
                    eval(annotation, namespace) if isinstance(annotation, str) else annotation  # noqa: S307
                )
            except Exception:  # noqa: BLE001
                hints[name] = Any
        return hints


_SEQUENCES = (list, tuple, abc.Sequence, abc.MutableSequence, abc.Iterable, abc.Collection)
_MAPPINGS = (dict, abc.Mapping, abc.MutableMapping)


def accepts(annotation: Any, value: Any) -> bool:
    """Whether a config value (after Hydra's parsing) can be an argument annotated `annotation`.

    Plain values are checked strictly (an int is a float, a bool is not an int); annotations this
    cannot judge (classes, callables, type variables) accept anything, so a valid config is never
    refused: the target's own checks still run when it is built.
    """
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Union or origin is types.UnionType:
        return any(accepts(arg, value) for arg in args)
    if annotation is type(None) or annotation is None:
        return value is None
    if origin is Literal:
        return any(value == arg and type(value) is type(arg) for arg in args)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    container = origin or annotation
    if container in _SEQUENCES:
        if not isinstance(value, list | tuple):
            return not isinstance(value, _PRIMITIVES + (dict,))
        if container is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(accepts, args, value))
        return not args or all(accepts(args[0], item) for item in value)
    if container in _MAPPINGS:
        return isinstance(value, dict)
    return True


def type_text(annotation: Any) -> str:
    """A short readable form of an annotation for error messages."""
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type):
        return annotation.__name__
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Union or origin is types.UnionType:
        literals = [
            v for arg in args if typing.get_origin(arg) is Literal for v in typing.get_args(arg)
        ]
        others = [type_text(arg) for arg in args if typing.get_origin(arg) is not Literal]
        if literals:
            others.insert(0, "one of " + ", ".join(repr(v) for v in literals))
        return " or ".join(others)
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    return str(annotation).replace("typing.", "")
