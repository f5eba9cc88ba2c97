"""Loading experiment files, checkpoints and pickled models, and what a user is told when one is wrong."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from bpviz.engine.load.experiment import Experiment, load_experiment
from bpviz.engine.user_error import UserCodeError

GOOD = """
import torch
from torch import nn

def build():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(5, 4, generator=g), torch.randint(3, (5,), generator=g)) for _ in range(2)]
    return {RETURN}
"""


def write(tmp_path: Path, source: str, name: str = "exp.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def good_file(tmp_path: Path, returned: str = "{'model': model, 'train_data': data}", extra: str = "") -> Path:
    return write(tmp_path, GOOD.replace("{RETURN}", returned) + textwrap.dedent(extra))


def load_error(path: Path, **kwargs) -> UserCodeError:
    with pytest.raises(UserCodeError) as info:
        load_experiment(path, **kwargs)
    return info.value


# --- a good file ---------------------------------------------------------------------------------


def test_minimal_file_gets_default_loss_and_optimizer(tmp_path):
    path = good_file(tmp_path)
    experiment = load_experiment(path)
    assert isinstance(experiment, Experiment)
    assert experiment.source == path
    assert isinstance(experiment.loss_fn, nn.CrossEntropyLoss)
    assert isinstance(experiment.optimizer, torch.optim.SGD)
    assert experiment.optimizer.param_groups[0]["lr"] == 0.01
    held = {id(p) for p in experiment.optimizer.param_groups[0]["params"]}
    assert held == {id(p) for p in experiment.model.parameters()}
    assert len(list(experiment.train_data)) == 2
    assert experiment.val_data is None and experiment.evaluate is None and experiment.seed == 0


def test_given_loss_optimizer_validation_are_kept(tmp_path):
    path = good_file(
        tmp_path,
        "{'model': model, 'train_data': data, 'loss_fn': nn.NLLLoss(), 'val_data': data[:1],"
        " 'optimizer': torch.optim.Adam(model.parameters(), lr=0.5), 'evaluate': evaluate}",
        extra="""
        def evaluate(model, val_data):
            return {"accuracy": 1.0}
        """,
    )
    experiment = load_experiment(path)
    assert isinstance(experiment.loss_fn, nn.NLLLoss)
    assert isinstance(experiment.optimizer, torch.optim.Adam)
    assert experiment.optimizer.param_groups[0]["lr"] == 0.5
    assert experiment.evaluate(experiment.model, experiment.val_data) == {"accuracy": 1.0}
    assert len(experiment.val_data) == 1


def test_same_seed_rebuilds_identically_and_other_seed_differs(tmp_path):
    path = write(
        tmp_path,
        """
        import random
        import numpy as np
        import torch
        from torch import nn
        NOISE = torch.randn(3)

        def build():
            model = nn.Linear(4, 2)
            x = torch.full((2, 4), float(random.random() + np.random.rand()))
            return {"model": model, "train_data": [(x + NOISE.sum(), torch.zeros(2, dtype=torch.long))]}
        """,
    )
    a, b, c = load_experiment(path, seed=3), load_experiment(path, seed=3), load_experiment(path, seed=4)
    assert torch.equal(a.model.weight, b.model.weight)
    assert torch.equal(a.train_data[0][0], b.train_data[0][0])
    assert not torch.equal(a.model.weight, c.model.weight)
    assert not torch.equal(a.train_data[0][0], c.train_data[0][0])
    assert a.seed == 3


def test_loading_leaves_no_module_behind_and_sees_sibling_files(tmp_path):
    write(tmp_path, "WIDTH = 6\n", name="helpers_for_exp.py")
    path = write(
        tmp_path,
        """
        import torch
        from torch import nn
        from helpers_for_exp import WIDTH

        def build():
            batch = (torch.randn(1, WIDTH), torch.zeros(1, dtype=torch.long))
            return {"model": nn.Linear(WIDTH, 2), "train_data": [batch]}
        """,
    )
    before = set(sys.modules)
    path_before = list(sys.path)
    experiment = load_experiment(path)
    sys.modules.pop("helpers_for_exp", None)
    assert experiment.model.in_features == 6
    assert not [name for name in set(sys.modules) - before if name.startswith("bpviz_experiment")]
    assert sys.path == path_before


# --- broken files: what, where, why --------------------------------------------------------------


def test_missing_file(tmp_path):
    error = load_error(tmp_path / "nope.py")
    assert error.what == f"cannot open {tmp_path / 'nope.py'}"
    assert error.why == "no such file"


def test_unknown_file_type(tmp_path):
    error = load_error(write(tmp_path, "x", name="model.onnx"))
    assert error.what == "cannot load model.onnx"
    assert "unknown file type '.onnx'" in error.why


def test_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "import torch\n\ndef build(:\n    pass\n")
    error = load_error(path)
    assert error.what == "the experiment file has a syntax error"
    assert error.where == f"{path}:3"
    assert error.why.startswith("SyntaxError")
    assert "Traceback" in error.details


def test_import_time_failure_names_the_line(tmp_path):
    path = write(tmp_path, "import torch\nSCALE = 1 / 0\n")
    error = load_error(path)
    assert error.what == "importing the experiment file failed"
    assert error.where == f"{path}:2"
    assert error.why == "ZeroDivisionError: division by zero"


def test_no_build(tmp_path):
    path = write(tmp_path, "import torch\nmodel = None\n")
    error = load_error(path)
    assert error.what == "the experiment file defines no build()"
    assert error.where == str(path)
    assert "def build():" in error.why


def test_build_not_a_function(tmp_path):
    error = load_error(write(tmp_path, "build = 3\n"))
    assert error.what == "build in the experiment file is not a function"
    assert "build is a int" in error.why


def test_build_with_required_arguments(tmp_path):
    path = write(tmp_path, "\n\ndef build(device, lr=0.1):\n    return {}\n")
    error = load_error(path)
    assert error.what == "build() must take no arguments"
    assert error.where == f"{path}:3"
    assert "it requires device" in error.why


def test_build_raising_points_inside_the_users_file(tmp_path):
    path = write(
        tmp_path,
        """
        def make_model():
            raise ValueError("width must be positive")

        def build():
            return {"model": make_model()}
        """,
    )
    error = load_error(path)
    assert error.what == "build() raised an exception"
    assert error.where == f"{path}:3"
    assert error.why == "ValueError: width must be positive"
    assert "make_model" in error.details


def test_build_raising_inside_torch_still_points_at_the_users_line(tmp_path):
    path = write(
        tmp_path,
        """
        from torch import nn

        def build():
            return {"model": nn.Linear(-1, 3)}
        """,
    )
    error = load_error(path)
    assert error.where == f"{path}:5"
    assert error.why.startswith("RuntimeError")


@pytest.mark.parametrize(
    ("returned", "what"),
    [
        ("[model, data]", "build() returned a list, not a dict"),
        ("None", "build() returned None, not a dict"),
        ("model", "build() returned a Sequential, not a dict"),
    ],
)
def test_build_returning_a_non_mapping(tmp_path, returned, what):
    path = good_file(tmp_path, returned)
    error = load_error(path)
    assert error.what == what
    assert error.where == f"{path}:5"  # the line of `def build():`
    assert "return a dict" in error.why


def test_unknown_key_lists_the_known_ones(tmp_path):
    error = load_error(good_file(tmp_path, "{'model': model, 'train_data': data, 'optimiser': None}"))
    assert error.what == "build() returned unknown key(s): 'optimiser'"
    assert error.why == "the known keys are model, train_data, loss_fn, optimizer, val_data, evaluate"


@pytest.mark.parametrize(
    ("returned", "what", "why"),
    [
        ("{'train_data': data}", "build() returned no 'model'", "add 'model': your nn.Module to the dict"),
        ("{'model': nn.Linear, 'train_data': data}", "'model' is not a torch.nn.Module", "the class Linear"),
        ("{'model': 'resnet', 'train_data': data}", "'model' is not a torch.nn.Module", "build() gave a str"),
        ("{'model': model}", "build() returned no 'train_data'", "(inputs, targets) batches"),
        ("{'model': model, 'train_data': []}", "'train_data' is empty", "it yielded no batch"),
        ("{'model': model, 'train_data': iter(data)}", "'train_data' can be iterated only once", "an iterator"),
        ("{'model': model, 'train_data': (b for b in data)}", "'train_data' can be iterated only once", "a generator"),
        ("{'model': model, 'train_data': 5}", "'train_data' is not a collection of batches", "build() gave a int"),
        ("{'model': model, 'train_data': data[0][0]}", "'train_data' is not a collection of batches", "a Tensor"),
        (
            "{'model': model, 'train_data': [d[0] for d in data]}",
            "'train_data' does not yield (inputs, targets) pairs",
            "a single tensor of shape (5, 4)",
        ),
        (
            "{'model': model, 'train_data': [(1, 2, 3)]}",
            "'train_data' does not yield (inputs, targets) pairs",
            "a tuple of 3 item(s), not 2",
        ),
        (
            "{'model': model, 'train_data': [([1.0], torch.zeros(1))]}",
            "'train_data' batches must hold tensors",
            "the first batch's inputs is a list, not a torch.Tensor",
        ),
        (
            "{'model': model, 'train_data': [(torch.zeros(1, 4), 3)]}",
            "'train_data' batches must hold tensors",
            "the first batch's targets is a int, not a torch.Tensor",
        ),
        ("{'model': model, 'train_data': data, 'val_data': []}", "'val_data' is empty", "it yielded no batch"),
        ("{'model': model, 'train_data': data, 'loss_fn': 'mse'}", "'loss_fn' is not callable", "a str"),
        ("{'model': model, 'train_data': data, 'evaluate': 1}", "'evaluate' is not callable", "a int"),
        (
            "{'model': model, 'train_data': data, 'optimizer': torch.optim.Adam}",
            "'optimizer' is not a torch.optim.Optimizer",
            "the class Adam",
        ),
        (
            "{'model': model, 'train_data': data, 'optimizer': torch.optim.SGD(nn.Linear(4, 3).parameters(), lr=1)}",
            "the optimizer is not over the model's parameters",
            "2 of the 2 tensors it updates do not belong to 'model'",
        ),
        (
            "{'model': nn.Sequential(nn.Flatten()), 'train_data': data}",
            "the model has no trainable parameters",
            "nothing to train",
        ),
    ],
)
def test_ill_formed_returned_dict(tmp_path, returned, what, why):
    path = good_file(tmp_path, returned)
    error = load_error(path)
    assert error.what == what
    assert why in error.why
    assert error.where == f"{path}:5"


def test_val_data_is_not_checked_when_evaluate_reads_it(tmp_path):
    path = good_file(
        tmp_path,
        "{'model': model, 'train_data': data, 'val_data': {'images': 1}, 'evaluate': lambda m, v: {}}",
    )
    assert load_experiment(path).val_data == {"images": 1}


def test_batches_of_several_inputs_or_keyword_inputs_are_accepted(tmp_path):
    path = good_file(
        tmp_path,
        "{'model': model, 'train_data': [((d[0], d[0]), d[1]) for d in data], "
        "'val_data': [({'x': d[0]}, {'label': d[1]}) for d in data]}",
    )
    experiment = load_experiment(path)
    assert len(experiment.train_data[0][0]) == 2
    assert set(experiment.val_data[0][1]) == {"label"}


def test_optimizer_over_a_subset_of_the_parameters_is_fine(tmp_path):
    path = good_file(
        tmp_path, "{'model': model, 'train_data': data, 'optimizer': torch.optim.SGD(model[2].parameters(), lr=1)}"
    )
    assert len(load_experiment(path).optimizer.param_groups[0]["params"]) == 2


# --- --weights -----------------------------------------------------------------------------------


def test_weights_are_loaded_into_the_model(tmp_path):
    path = good_file(tmp_path)
    source = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    torch.nn.init.constant_(source[0].weight, 0.25)
    torch.save(source.state_dict(), tmp_path / "w.pt")
    experiment = load_experiment(path, weights=tmp_path / "w.pt")
    assert torch.equal(experiment.model[0].weight, torch.full((8, 4), 0.25))


def test_training_checkpoint_with_state_dict_entry(tmp_path):
    source = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    torch.save({"epoch": 3, "model_state_dict": source.state_dict()}, tmp_path / "ckpt.pt")
    experiment = load_experiment(good_file(tmp_path), weights=tmp_path / "ckpt.pt")
    assert torch.equal(experiment.model[2].bias, source[2].bias)


def test_weights_with_wrong_keys_name_them(tmp_path):
    other = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3), nn.Linear(3, 3))
    state = other.state_dict()
    del state["0.bias"]
    torch.save(state, tmp_path / "w.pt")
    error = load_error(good_file(tmp_path), weights=tmp_path / "w.pt")
    assert error.what == "the weights in w.pt do not fit the model"
    assert error.why == "missing keys: 0.bias; unexpected keys: 3.bias, 3.weight"
    assert error.where == str(tmp_path / "w.pt")


def test_weights_with_wrong_shapes(tmp_path):
    torch.save(nn.Sequential(nn.Linear(4, 9), nn.ReLU(), nn.Linear(9, 3)).state_dict(), tmp_path / "w.pt")
    error = load_error(good_file(tmp_path), weights=tmp_path / "w.pt")
    assert error.what == "the weights in w.pt do not fit the model"
    assert error.why == (
        "shape mismatch: 0.weight is (9, 4) in the file, (8, 4) in the model, "
        "0.bias is (9,) in the file, (8,) in the model, 2.weight is (3, 9) in the file, (3, 8) in the model"
    )


def test_weights_file_holding_a_pickled_module_is_not_unpickled(tmp_path):
    torch.save(nn.Linear(4, 3), tmp_path / "module.pt")
    error = load_error(good_file(tmp_path), weights=tmp_path / "module.pt")
    assert error.what == "cannot read weights from module.pt"
    assert "torch.save(model.state_dict(), path)" in error.why
    assert error.why.startswith("it holds objects besides tensors") and "weights_only" not in error.why


def test_weights_file_without_a_state_dict(tmp_path):
    torch.save([1, 2], tmp_path / "list.pt")
    error = load_error(good_file(tmp_path), weights=tmp_path / "list.pt")
    assert error.what == "list.pt holds no state dict"
    assert error.why.startswith("it holds a list")


def test_missing_weights_file(tmp_path):
    error = load_error(good_file(tmp_path), weights=tmp_path / "absent.pt")
    assert error.what == f"cannot open weights file {tmp_path / 'absent.pt'}"


# --- pickled whole modules -----------------------------------------------------------------------


def save_module(tmp_path: Path, obj: object, name: str = "net.pt") -> Path:
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_pickled_module_is_refused_without_trust(tmp_path):
    path = save_module(tmp_path, nn.Sequential(nn.Linear(4, 3)))
    error = load_error(path, input_shape=(4,))
    assert error.what == "refusing to unpickle net.pt without --trust"
    assert "runs arbitrary code" in error.why
    assert "--trust" in error.why


def test_trusted_pickled_module_needs_an_input_shape(tmp_path):
    error = load_error(save_module(tmp_path, nn.Sequential(nn.Linear(4, 3))), trust=True)
    assert error.what == "net.pt needs --input-shape"
    assert "--input-shape 3,32,32" in error.why


def test_trusted_pickled_module_trains_on_synthetic_batches(tmp_path):
    module = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.BatchNorm1d(5))
    module.eval()
    path = save_module(tmp_path, module, name="net.pth")
    experiment = load_experiment(path, trust=True, input_shape=(3, 4), seed=2)
    assert experiment.source == path and experiment.seed == 2
    assert experiment.model.training
    assert int(experiment.model[2].num_batches_tracked) == 0  # the probing forward left BatchNorm alone
    batches = list(experiment.train_data)
    assert len(batches) == 8
    for inputs, targets in batches:
        assert inputs.shape == (16, 3, 4)
        assert targets.shape == (16,) and targets.dtype == torch.long
        assert 0 <= int(targets.min()) and int(targets.max()) < 5
    assert isinstance(experiment.loss_fn, nn.CrossEntropyLoss)
    assert experiment.optimizer.param_groups[0]["lr"] == 0.01
    again = load_experiment(path, trust=True, input_shape=(3, 4), seed=2)
    assert torch.equal(again.train_data[3][0], batches[3][0]) and torch.equal(again.train_data[3][1], batches[3][1])


def test_dense_prediction_targets_follow_the_spatial_output(tmp_path):
    path = save_module(tmp_path, nn.Conv2d(3, 4, 1))
    inputs, targets = load_experiment(path, trust=True, input_shape=(3, 6, 5)).train_data[0]
    assert targets.shape == (16, 6, 5)


def test_trusted_state_dict_points_to_weights(tmp_path):
    path = save_module(tmp_path, nn.Linear(4, 3).state_dict())
    error = load_error(path, trust=True, input_shape=(4,))
    assert error.what == "net.pt holds a state dict, not a model"
    assert f"--weights {path}" in error.why


def test_trusted_non_module(tmp_path):
    error = load_error(save_module(tmp_path, [1, 2, 3]), trust=True, input_shape=(4,))
    assert error.what == "net.pt does not hold a torch.nn.Module"


def test_wrong_input_shape_is_explained(tmp_path):
    error = load_error(save_module(tmp_path, nn.Linear(4, 3)), trust=True, input_shape=(7,))
    assert error.what == "the model's forward failed on inputs of shape (16, 7)"
    assert error.why.startswith("RuntimeError")
    assert error.why.endswith("(is --input-shape right?)")


def test_output_without_class_dimension(tmp_path):
    saved = save_module(tmp_path, nn.Sequential(nn.Linear(4, 1), nn.Flatten(0)))
    error = load_error(saved, trust=True, input_shape=(4,))
    assert error.what == "cannot make classification targets for this model"
    assert "(16,)" in error.why
