"""Issue 22: use a trained model without its training data.

* every checkpoint carries its preprocessing (training mean/std, class names, input size, protocol); ``eval.py``,
  ``resattn.attention_maps`` and ``resattn.predict`` work on a data folder whose npz holds *only* the test
  images; checkpoints written before keep working (derived from the data, with a note);
* ``python -m resattn.predict`` agrees with ``eval.py``'s per-image predictions on real CIFAR-10 test images
  written as PNG files, and with ``trainer.predict``; bad inputs are one-line errors;
* ``python -m resattn.export``: onnxruntime and TorchScript match PyTorch's logits on real images;
* builders from the YAML layouts, the weights registry (file:// URL, sha256 verified) and ``torch.hub.load``.
"""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torchvision.io import read_image, write_png

from resattn import weights
from resattn.data import CIFAR10DataModule
from resattn.errors import EXIT_JOBS_FAILED, EXIT_USER_ERROR, CheckpointError, ConfigError
from resattn.training.build import build_datamodule, module_from_config
from resattn.training.checkpoint_files import preprocessing_of, run_config_of
from resattn.training.fit import train
from resattn.training.from_checkpoint import module_from_checkpoint
from tests.conftest import REPO, TINY, compose_cfg, run_script
from tests.helpers import run_checkpoint
from tests.test_data import real_npz

N_TEST = 300  # real test images used by the real-data tests


def _real_root() -> Path:
    path = real_npz()
    if path is None:
        pytest.skip("real cifar10.npz not found (RESATTN_DATA_DIR or ../shared/cifar10)")
    return path.parent


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A width-4 model trained for one epoch on 2,000 real training images, tested on the first 300 test images."""
    root = _real_root()
    run = tmp_path_factory.mktemp("real") / "run"
    overrides = [o for o in TINY if not o.startswith("data.")] + [
        "data=cifar10",
        f"data.root={root}",
        "data.train_size=2000",
        "data.val_size=500",
        f"data.test_size={N_TEST}",
        "data.batch_size=64",
        "data.eval_batch_size=100",
        "trainer.max_epochs=1",
        "augment=none",
    ]
    train(compose_cfg(run, [o for o in overrides if o != "data=synthetic"]))
    return run


@pytest.fixture(scope="module")
def test_only_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder whose cifar10.npz holds the first 300 test images and no training set at all."""
    with np.load(_real_root() / "cifar10.npz") as npz:
        x_test, y_test = npz["x_test"][:N_TEST], npz["y_test"][:N_TEST]
    root = tmp_path_factory.mktemp("test_only")
    np.savez(root / "cifar10.npz", x_test=x_test, y_test=y_test)
    return root


@pytest.fixture(scope="module")
def png_dir(test_only_root: Path) -> Path:
    """The 300 test images as PNG files ``00000.png`` ... (lossless: the same pixels as the npz)."""
    with np.load(test_only_root / "cifar10.npz") as npz:
        x_test = npz["x_test"]
    folder = test_only_root / "png"
    folder.mkdir()
    for i, image in enumerate(x_test):
        write_png(torch.from_numpy(image).permute(2, 0, 1).contiguous(), str(folder / f"{i:05d}.png"))
    return folder


@pytest.fixture(scope="module")
def hidden_eval(real_run: Path, test_only_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``eval.py`` of the real run on the folder without a training set; its output directory."""
    out = tmp_path_factory.mktemp("hidden_eval") / "eval"
    proc = run_script("eval.py", f"ckpt_path={real_run}", f"data.root={test_only_root}", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("tiny") / "run"
    train(compose_cfg(run, [*TINY, "trainer.max_epochs=1", "test=false"]))
    return run


# ------------------------------------------------------------------------------ preprocessing in checkpoints


def test_every_checkpoint_stores_the_data_module_s_preprocessing(tiny_run: Path) -> None:
    cfg = run_config_of(run_checkpoint(tiny_run))
    dm = build_datamodule(OmegaConf.create(cfg))
    dm.setup("fit")
    for name in ("last.ckpt", json.loads((tiny_run / "metrics.json").read_text())["best_ckpt"].split("/")[-1]):
        stored = preprocessing_of(run_checkpoint(tiny_run, name))
        assert stored["mean"] == list(dm.mean) and stored["std"] == list(dm.std)
        assert stored["class_names"] == list(dm.class_names) and stored["input_size"] == 32 and stored["in_channels"] == 3
        assert stored["protocol"] == {
            "source": "synthetic",
            "train": 256,
            "val": 64,
            "test": 64,
            "val_source": "holdout",
            "overlap(train,val)": 0,
            "overlap(train,test)": 0,
            "label_noise": 0.0,
            "changed": 0,
            "seed": 42,
        }


def test_stored_statistics_normalise_bit_for_bit_like_the_data_module(tiny_run: Path) -> None:
    module, stored, _ = module_from_checkpoint(tiny_run)
    dm = build_datamodule(stored)
    dm.setup("fit")
    x = dm.test_x[:16]
    expected, _ = dm.prepare_batch((x, dm.test_y[:16]), train=False, split="test")
    assert torch.equal(module.normalize(x), expected)
    test_only = build_datamodule(stored, module.preprocessing)
    test_only.setup("test")
    assert test_only.train_x is None and test_only.test_only
    assert torch.equal(test_only.prepare_batch((x, dm.test_y[:16]), train=False, split="test")[0], expected)


def test_test_split_alone_from_npz_and_torchvision_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8), np.arange(12) % 10
    stored = {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3], "normalization": "pool", "protocol": {"train": 30000}}
    np.savez(tmp_path / "cifar10.npz", x_test=x, y_test=y)  # no training arrays at all
    tv = tmp_path / "tv" / "cifar-10-batches-py"
    tv.mkdir(parents=True)
    with open(tv / "test_batch", "wb") as handle:  # torchvision's layout, test batch only
        pickle.dump({"data": x.transpose(0, 3, 1, 2).reshape(12, -1), "labels": y.tolist()}, handle)
    for root, source in ((tmp_path, "npz"), (tmp_path / "tv", "torchvision")):
        dm = CIFAR10DataModule(source=source, root=root, test_size=10, preprocessing=stored)
        dm.setup("test")
        assert dm.train_x is None and torch.equal(dm.test_x, torch.from_numpy(x[:10]).permute(0, 3, 1, 2))
        scale, shift = dm.normalizer("test")
        torch.testing.assert_close(scale.flatten(), 1 / (255 * torch.tensor([0.2, 0.25, 0.3])))
        torch.testing.assert_close(shift.flatten(), -torch.tensor([0.5, 0.4, 0.3]) / torch.tensor([0.2, 0.25, 0.3]))


# ------------------------------------------------------------------------------ without the training set


def test_eval_and_maps_need_no_training_set(real_run: Path, test_only_root: Path, hidden_eval: Path, tmp_path: Path) -> None:
    """The data folder holds only the 300 test images: eval.py reproduces train.py's test/acc on them and the maps
    are drawn (a full load would stop: the npz has no x_train). Prediction needs no data folder at all."""
    recorded = json.loads((real_run / "metrics.json").read_text())
    evaluated = json.loads((hidden_eval / "metrics.json").read_text())
    assert evaluated["test/acc"] == recorded["test/acc"] and evaluated["test/loss"] == pytest.approx(recorded["test/loss"], abs=1e-6)
    log = (hidden_eval / "eval.log").read_text()
    assert (
        f"data: source=npz test={N_TEST} (test split only; normalisation=pool and protocol from the checkpoint: source=npz train=2000"
        in log
    )
    assert len(_rows(hidden_eval / "predictions.csv")) == N_TEST

    out = tmp_path / "maps.png"
    proc = run_script("-m", "resattn.attention_maps", f"ckpt_path={real_run}", "n=3", f"data.root={test_only_root}", f"out={out}")
    assert proc.returncode == 0 and out.is_file(), proc.stderr[-3000:]


def test_old_checkpoints_derive_their_preprocessing_from_the_data(real_run: Path, tmp_path: Path) -> None:
    ckpt = run_checkpoint(real_run, json.loads((real_run / "metrics.json").read_text())["best_ckpt"].split("/")[-1])
    del ckpt["hyper_parameters"]["preprocessing"]  # as written before issue 22
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    proc = run_script("eval.py", f"ckpt_path={old}", f"hydra.run.dir={tmp_path / 'eval'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"note: {old} stores no preprocessing" in (tmp_path / "eval" / "eval.log").read_text()
    assert (
        json.loads((tmp_path / "eval" / "metrics.json").read_text())["test/acc"]
        == json.loads((real_run / "metrics.json").read_text())["test/acc"]
    )


# ------------------------------------------------------------------------------------------------ predict


def test_predict_agrees_with_eval_and_trainer_predict(
    real_run: Path, test_only_root: Path, png_dir: Path, hidden_eval: Path, tmp_path: Path
) -> None:
    evaluated = _rows(hidden_eval / "predictions.csv")
    out = tmp_path / "predictions.csv"
    proc = run_script("-m", "resattn.predict", f"ckpt_path={real_run}", f"inputs={png_dir}", f"out={out}", "topk=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    predicted = _rows(out)
    assert [Path(r["file"]).name for r in predicted] == [f"{i:05d}.png" for i in range(N_TEST)]
    assert [r["predicted"] for r in predicted] == [r["predicted"] for r in evaluated]
    assert len({r["predicted"] for r in predicted}) >= 3  # a model that tells images apart: the comparison means something
    for p, e in zip(predicted, evaluated):
        assert float(p["probability"]) == pytest.approx(float(e["probability"]), abs=1e-5)
        top = [pair.split(":") for pair in p["topk"].split(";")]
        assert len(top) == 3 and top[0] == [p["predicted"], p["probability"]]
    assert f"{png_dir / '00000.png'}" in proc.stdout and "top-3" in proc.stdout

    # trainer.predict with the data module's test loader goes through the same predict_step
    import pytorch_lightning as pl

    module, stored, _ = module_from_checkpoint(real_run, {"root": str(test_only_root)})
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    probabilities = torch.cat(trainer.predict(module, datamodule=build_datamodule(stored, module.preprocessing)))
    assert [module.class_names[i] for i in probabilities.argmax(1).tolist()] == [r["predicted"] for r in evaluated]


def test_predict_bad_inputs(tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    good = tmp_path / "images"
    good.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        write_png(torch.from_numpy(rng.integers(0, 256, (3, 32, 32), dtype=np.uint8)), str(good / f"{i}.png"))
    (good / "broken.png").write_bytes(b"not an image")
    write_png(torch.zeros(1, 32, 32, dtype=torch.uint8), str(tmp_path / "gray.png"))
    write_png(torch.zeros(3, 40, 48, dtype=torch.uint8), str(tmp_path / "big.png"))
    (tmp_path / "empty").mkdir()

    proc = run_script("-m", "resattn.predict", f"ckpt_path={tiny_run}", f"inputs={good}", f"out={tmp_path / 'p.csv'}")
    assert proc.returncode == EXIT_JOBS_FAILED, proc.stderr[-2000:]
    assert f"error: {good / 'broken.png'}: unreadable image" in proc.stderr and "Traceback" not in proc.stderr
    assert [Path(r["file"]).name for r in _rows(tmp_path / "p.csv")] == ["0.png", "1.png", "2.png"]

    from resattn.predict import main

    cases = {
        ("images/broken.png",): f"error: {good / 'broken.png'}: unreadable image",
        ("gray.png",): f"error: {tmp_path / 'gray.png'}: 1 channel(s) (grayscale); the model takes 3-channel RGB images: convert it to RGB",
        ("empty",): f"error: inputs={tmp_path / 'empty'}: no .png/.jpg/.jpeg images in this folder",
        ("missing.png",): f"error: inputs={tmp_path / 'missing.png'}: no such file or folder",
        ("big.png", "resize=false"): f"error: {tmp_path / 'big.png'}: 48x40 pixels; the model takes 32x32 images (resize=false)",
        ("big.png", "topk=11"): "error: topk=11: out of range; expected an integer between 1 and 10",
        ("big.png", "tta=mirror"): "error: tta='mirror': not supported; expected one of none, flip, flip_translate",
        ("big.png", "tta_mode=flip"): "error: unknown argument(s) tta_mode",
    }
    for (name, *options), message in cases.items():
        capsys.readouterr()
        assert main([f"ckpt_path={tiny_run}", f"inputs={tmp_path / name}", *options]) == EXIT_USER_ERROR
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(message), lines
    assert main([f"ckpt_path={tiny_run}", f"inputs={tmp_path / 'big.png'}"]) == 0  # resized to 32x32
    assert "big.png" in capsys.readouterr().out
    # tta=flip averages the logits of an image and of its mirror image: p_flip ∝ sqrt(p(image) · p(mirror)).
    from resattn.predict import DEFAULTS, predict

    image = good / "0.png"
    write_png(read_image(image).flip(-1), str(tmp_path / "mirror.png"))

    def probabilities(path: Path, tta: str) -> torch.Tensor:
        (prediction,), _ = predict({**DEFAULTS, "ckpt_path": str(tiny_run), "inputs": str(path), "topk": 10, "tta": tta})
        return torch.tensor([p for _, p in sorted(prediction.top)], dtype=torch.float64)

    plain, mirror, flipped = probabilities(image, "none"), probabilities(tmp_path / "mirror.png", "none"), probabilities(image, "flip")
    expected = (plain * mirror).sqrt() / (plain * mirror).sqrt().sum()
    assert torch.allclose(flipped, expected, atol=1e-5) and not torch.allclose(flipped, plain, atol=1e-3)


# ------------------------------------------------------------------------------------------------- export


def _real_images(root: Path, n: int = 64) -> torch.Tensor:
    with np.load(root / "cifar10.npz") as npz:
        return torch.from_numpy(npz["x_test"][:n]).permute(0, 3, 1, 2).contiguous()


def test_onnx_matches_pytorch_on_real_images(real_run: Path, test_only_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx", reason='the export extra is not installed (pip install -e ".[export]")')
    ort = pytest.importorskip("onnxruntime", reason='the export extra is not installed (pip install -e ".[export]")')
    from resattn.export import main

    out = tmp_path / "model.onnx"
    assert main([f"ckpt_path={real_run}", "format=onnx", f"out={out}"]) == 0
    module, _, _ = module_from_checkpoint(real_run)
    images = _real_images(test_only_root)
    with torch.no_grad():
        expected = module.eval().net(module.normalize(images))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {"images": (images.float() / 255).numpy()})[0]
    assert np.abs(logits - expected.numpy()).max() <= 1e-4
    assert json.loads(session.get_modelmeta().custom_metadata_map["class_names"]) == module.class_names


def test_torchscript_matches_pytorch(real_run: Path, test_only_root: Path, tmp_path: Path) -> None:
    from resattn.export import main

    out = tmp_path / "model.pt"
    assert main([f"ckpt_path={real_run}", "format=torchscript", f"out={out}"]) == 0
    module, _, _ = module_from_checkpoint(real_run)
    images = _real_images(test_only_root)
    extra = {"class_names.json": ""}
    scripted = torch.jit.load(str(out), _extra_files=extra)
    with torch.no_grad():
        torch.testing.assert_close(scripted(images.float() / 255), module.eval().net(module.normalize(images)), atol=1e-4, rtol=0)
    assert json.loads(extra["class_names.json"]) == module.class_names


# ------------------------------------------------------------------------------------ builders and weights


def test_builders_are_the_yaml_layouts() -> None:
    from resattn.config.compose import compose
    from resattn.models import attention56, attention56_mini, attention56_mini_paper, attention92
    from resattn.models.network import build_model

    for builder in (attention56_mini, attention56_mini_paper, attention56, attention92):
        net = builder(width=2, num_classes=7)
        reference = build_model(compose("train", [f"model={builder.__name__}", "model.width=2", "model.num_classes=7"]))
        assert {k: v.shape for k, v in net.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
    with pytest.raises(ConfigError, match="unknown argument"):
        attention56_mini(widht=8)
    with pytest.raises(ConfigError, match=r"model.width='x': wrong type"):
        attention56_mini(width="x")


@pytest.fixture
def hub_dir(tmp_path: Path):
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(previous)
    for name in [n for n in weights.REGISTRY if n.startswith("test-")]:
        del weights.REGISTRY[name]


def test_weights_registry_and_torch_hub(tiny_run: Path, tmp_path: Path, hub_dir: Path, capsys: pytest.CaptureFixture) -> None:
    from resattn.export import main as export_main
    from resattn.predict import main as predict_main

    file = tmp_path / "published" / "tiny-w4.safetensors"
    assert export_main([f"ckpt_path={tiny_run}", "format=safetensors", f"out={file}"]) == 0
    printed = capsys.readouterr().out
    digest = weights.sha256_of(file)
    assert f"sha256: {digest}" in printed and 'builder="attention56_mini"' in printed
    weights.register(weights.Weights("test-tiny", url=file.as_uri(), sha256=digest, builder="attention56_mini", meta={"test_acc": None}))

    net = torch.hub.load(str(REPO), "attention56_mini", source="local", weights="test-tiny")
    module, _, _ = module_from_checkpoint(tiny_run)
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), module.eval().net(x), atol=0, rtol=0)
    assert net.preprocessing == module.preprocessing
    assert (hub_dir / "checkpoints" / file.name).is_file()  # downloaded once into the hub cache

    # the name works wherever a checkpoint does
    image = tmp_path / "one.png"
    write_png(torch.zeros(3, 32, 32, dtype=torch.uint8), str(image))
    assert predict_main(["ckpt_path=test-tiny", f"inputs={image}"]) == 0

    from resattn.training.fit import init_from_checkpoint
    from resattn.validation import check_config, check_inputs

    cfg = compose_cfg(tmp_path / "from_weights", [*TINY, "ckpt_path=test-tiny"])  # train.py ckpt_path=<weights name>
    check_config(cfg)
    check_inputs(cfg)
    started = module_from_config(cfg)
    init_from_checkpoint(started, "test-tiny")
    assert all(torch.equal(v, module.net.state_dict()[k]) for k, v in started.net.state_dict().items())

    with pytest.raises(ConfigError, match="were trained with other model keys: width=8"):
        torch.hub.load(str(REPO), "attention56_mini", source="local", weights="test-tiny", width=8)
    with pytest.raises(ConfigError, match="are attention56_mini weights, not attention92"):
        torch.hub.load(str(REPO), "attention92", source="local", weights="test-tiny")
    weights.register(weights.Weights("test-bad", url=file.as_uri(), sha256="0" * 64, builder="attention56_mini"))
    (hub_dir / "checkpoints" / file.name).unlink()
    with pytest.raises(CheckpointError, match="test-bad"):
        torch.hub.load(str(REPO), "attention56_mini", source="local", weights="test-bad")
    assert not (hub_dir / "checkpoints" / file.name).exists()  # a download that fails its checksum is not kept
    with pytest.raises(CheckpointError, match="no such weights name"):
        weights.get("test-none")


SHIPPED = [entry for entry in weights.REGISTRY.values() if "://" not in entry.url]  # files kept in the repository


@pytest.mark.parametrize("entry", SHIPPED, ids=[entry.name for entry in SHIPPED])
def test_shipped_weights_reproduce_their_published_accuracy(entry: weights.Weights, hub_dir: Path) -> None:
    """``torch.hub.load(<repo>, <builder>, source="local", weights=<name>)`` on all 10,000 real test images, in float32,
    gives the registry's ``test_acc_fp32`` (checksum verified on the way)."""
    from resattn.data.splits import pool_affine

    root = _real_root()
    net = torch.hub.load(str(REPO), entry.builder, source="local", weights=entry.name).eval()
    affine = pool_affine(net.preprocessing["mean"], net.preprocessing["std"])
    scale, shift = (torch.tensor(a, dtype=torch.float32).view(1, -1, 1, 1) for a in affine)
    with np.load(root / "cifar10.npz") as npz:
        images, labels = torch.from_numpy(npz["x_test"]).permute(0, 3, 1, 2), torch.from_numpy(npz["y_test"]).long().view(-1)
    assert len(labels) == 10_000
    with torch.inference_mode():
        correct = sum(
            int((net(torch.addcmul(shift, images[i : i + 1000].float(), scale)).argmax(1) == labels[i : i + 1000]).sum())
            for i in range(0, len(labels), 1000)
        )
    assert correct / len(labels) == pytest.approx(entry.meta["test_acc_fp32"], abs=1e-3)


# ------------------------------------------------------------------------------ your own data, fine-tuning

TREE = [o for o in TINY if not o.startswith(("data.", "data="))] + ["data=imagefolder", "model.num_classes=3", "model.input_size=40"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from resattn.data.imagefolder import write_demo_tree

    return write_demo_tree(tmp_path_factory.mktemp("tree") / "shapes")


def test_imagefolder_trains_with_the_cifar_protocol(tree: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(compose_cfg(run, [*TREE, f"data.root={tree}", "trainer.max_epochs=1"]))
    assert json.loads((run / "metrics.json").read_text())["status"] == "ok"
    stored = preprocessing_of(run_checkpoint(run))
    assert stored["class_names"] == ["disc", "square", "stripes"] and stored["input_size"] == 40
    protocol = stored["protocol"]
    assert (protocol["source"], protocol["train"], protocol["val"], protocol["test"]) == ("imagefolder", 64, 16, 24)
    assert protocol["overlap(train,val)"] == protocol["overlap(train,test)"] == 0

    from resattn.predict import main

    assert main([f"ckpt_path={run}", f"inputs={tree / 'disc' / '000.png'}", "topk=3"]) == 0


def test_imagefolder_config_errors(tree: Path, tmp_path: Path) -> None:
    from resattn.config.compose import compose
    from resattn.validation import check_config

    def error(*overrides: str) -> str:
        with pytest.raises(ConfigError) as info:
            check_config(compose("train", ["data=imagefolder", *overrides]))
        return str(info.value)

    assert error("data.root=null").startswith("data.root=null: data=imagefolder needs data.root=")
    assert error(f"data.root={tree}", "model.input_size=40") == (
        f"model.num_classes=10: data.root={tree} has 3 classes (disc, square, stripes); set model.num_classes=3"
    )
    assert error(f"data.root={tree}", "model.num_classes=3").startswith("model.input_size=32: the images are 40x40")
    check_config(compose("train", ["data=imagefolder", f"data.root={tree}", "model.num_classes=3", "data.image_size=32"]))


def test_finetune_from_a_cifar_checkpoint(tiny_run: Path, tree: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from resattn.training.fit import init_from_checkpoint

    ckpt = tiny_run / "checkpoints" / "last.ckpt"
    cfg = compose_cfg(tmp_path / "ft", [*TREE, f"data.root={tree}", "trainer.max_epochs=1", f"ckpt_path={ckpt}"])
    module = module_from_config(cfg)
    fresh = module.net.classifier.weight.detach().clone()
    with caplog.at_level("INFO"):
        init_from_checkpoint(module, ckpt)
    stored = run_checkpoint(tiny_run)["state_dict"]
    for k, v in module.net.state_dict().items():
        if not k.startswith("classifier."):
            assert torch.equal(v, stored[f"net.{k}"]), k
    assert torch.equal(module.net.classifier.weight, fresh) and module.initial_optimizer_state is None
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("fine-tune:"))
    assert "classifier re-initialised (10 classes x 1600 features in the checkpoint, now 3 x 3136); optimizer state not loaded" in line
    train(cfg)  # and the run goes through (the preflight accepts it as train.py's would)
    assert json.loads((tmp_path / "ft" / "metrics.json").read_text())["status"] == "ok"
