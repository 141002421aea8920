"""tasks.digits.predict: saved models reload and classify real image files of many kinds."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from digits_fixtures import TEMPLATES, synthetic_digits
from PIL import Image

from tasks.digits import DigitsError, predict, split
from tasks.digits.models import save_keras, to_inputs
from tasks.digits.train import train_cnn, train_softmax

SCALE = 4  # test images are 112x112: the digit drawn at 4x MNIST size


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    """Both kinds of model trained on synthetic digits and saved as .keras files."""
    folder = tmp_path_factory.mktemp("models")
    images, labels = synthetic_digits(60, seed=0)
    splits = split.split_test_set(images, labels, dev_fraction=0.1, test_fraction=0.2, seed=0)
    soft = train_softmax(splits.train, splits.test, steps=300, eval_every=300)
    cnn = train_cnn(splits.train, splits.test, filters=(4, 8), dense_units=32, epochs=2,
                    batch_size=32, learning_rate=3e-3, eval_every=100)
    x = to_inputs(splits.test.images)
    np.save(folder / "x.npy", x)
    paths = {}
    for name, result in (("softmax", soft), ("cnn", cnn)):
        paths[name] = save_keras(result.model, folder / f"{name}.keras")
        np.save(folder / f"{name}.npy", result.model(x, training=False).numpy())
    return paths


@pytest.fixture(scope="module")
def softmax(saved) -> keras.Model:
    return predict.load_model(saved["softmax"])


def digit_pixels(k: int) -> np.ndarray:
    """Class k as uint8 [112, 112]: white digit on black, 4x the 28x28 template."""
    return np.kron(TEMPLATES[k] * 255, np.ones((SCALE, SCALE))).astype(np.uint8)


@pytest.mark.parametrize("name", ["softmax", "cnn"])
def test_saved_models_reload_and_predict_the_same(saved, name: str) -> None:
    folder = saved[name].parent
    model = predict.load_model(saved[name])
    x = np.load(folder / "x.npy")
    np.testing.assert_allclose(model(x, training=False).numpy(), np.load(folder / f"{name}.npy"),
                               atol=1e-6)
    assert list(folder.glob(".*tmp*")) == []  # atomic save left no temp file


def test_grayscale_and_rgb_and_other_modes_agree(softmax, tmp_path: Path) -> None:
    for k in range(10):
        gray = digit_pixels(k)
        files = {"L.png": Image.fromarray(gray),
                 "RGB.png": Image.fromarray(np.stack([gray] * 3, axis=-1)),
                 "P.png": Image.fromarray(np.stack([gray] * 3, axis=-1)).convert("P"),
                 "I16.png": Image.fromarray(gray.astype(np.uint16) * 257),
                 "L.jpg": Image.fromarray(gray)}
        for suffix, image in files.items():
            path = tmp_path / f"{k}-{suffix}"
            image.save(path)
            assert predict.predict_digit(softmax, path, center=False)[0] == k, path.name
        reference = predict.load_image(tmp_path / f"{k}-L.png", center=False)
        assert reference.shape == (28, 28) and reference.dtype == np.float32
        assert reference.max() == pytest.approx(1.0, abs=0.02) and reference.min() >= 0
        for suffix in ("RGB.png", "P.png", "I16.png"):
            np.testing.assert_allclose(predict.load_image(tmp_path / f"{k}-{suffix}",
                                                          center=False), reference, atol=0.02)


def test_dark_on_light_is_inverted(softmax, tmp_path: Path) -> None:
    for k in (0, 3, 7):
        light = digit_pixels(k)
        Image.fromarray(light).save(tmp_path / "light-on-dark.png")
        Image.fromarray(np.stack([255 - light] * 3, -1)).save(tmp_path / "dark-on-light.png")
        # black strokes on a transparent canvas (how drawing apps export): alpha carries the ink
        rgba = np.zeros((*light.shape, 4), np.uint8)
        rgba[..., 3] = light
        Image.fromarray(rgba, "RGBA").save(tmp_path / "transparent.png")
        want = predict.load_image(tmp_path / "light-on-dark.png", center=False)
        for name in ("dark-on-light.png", "transparent.png"):
            got = predict.load_image(tmp_path / name, center=False)
            np.testing.assert_allclose(got, want, atol=0.02)
            digit, probability = predict.predict_digit(softmax, tmp_path / name, center=False)
            assert digit == k and 0.5 < probability <= 1.0


def test_center_makes_a_small_off_centre_digit_look_like_mnist(tmp_path: Path) -> None:
    canvas = np.full((200, 300), 230, np.uint8)          # light-grey paper, landscape
    canvas[20:80, 200:215] = 40                          # a dark "1", 60 px tall, top right
    Image.fromarray(canvas).save(tmp_path / "photo.jpg", quality=90)
    image = predict.load_image(tmp_path / "photo.jpg")   # center=True is the default
    rows, cols = np.nonzero(image > 0.5)
    assert rows.max() - rows.min() + 1 in (19, 20, 21)    # bounding box fitted into 20x20
    ys, xs = np.indices(image.shape)
    assert abs((ys * image).sum() / image.sum() - 13.5) <= 1.0  # centre of mass in the middle
    assert abs((xs * image).sum() / image.sum() - 13.5) <= 1.0
    assert image[0].max() < 0.1 and image[:, 0].max() < 0.1    # background stays black
    plain = predict.load_image(tmp_path / "photo.jpg", center=False)
    assert np.count_nonzero(plain > 0.5) < np.count_nonzero(image > 0.5) / 2  # tiny if not


def test_blank_image_gives_zeros(tmp_path: Path) -> None:
    Image.fromarray(np.full((40, 30), 255, np.uint8)).save(tmp_path / "white.png")
    assert not predict.load_image(tmp_path / "white.png").any()


def test_bad_images_raise_one_line_errors(softmax, tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    Image.fromarray(digit_pixels(1)).save(good)
    (tmp_path / "text.png").write_text("not an image\n")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:60])
    cases = {tmp_path / "missing.png": "image file not found",
             tmp_path: "image file not found",
             tmp_path / "text.png": "not a readable image",
             tmp_path / "empty.jpg": "not a readable image",
             tmp_path / "cut.png": "corrupt or truncated image|not a readable image"}
    for path, message in cases.items():
        with pytest.raises(DigitsError, match=message) as info:
            predict.predict_digit(softmax, path)
        assert "\n" not in str(info.value)
    with pytest.raises(DigitsError, match="expected a grayscale image"):
        predict.prepare(np.zeros((4, 4, 3)))


def test_bad_model_files(tmp_path: Path) -> None:
    with pytest.raises(DigitsError, match="model file not found"):
        predict.load_model(tmp_path / "none.keras")
    (tmp_path / "junk.keras").write_bytes(b"this is no zip archive")
    with pytest.raises(DigitsError, match="not a loadable Keras model") as info:
        predict.load_model(tmp_path / "junk.keras")
    assert "\n" not in str(info.value)
    flat = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation="softmax")])
    save_keras(flat, tmp_path / "flat.keras")
    with pytest.raises(DigitsError, match=r"expected \(None, 28, 28\) -> \(None, 10\)"):
        predict.load_model(tmp_path / "flat.keras")
    with pytest.raises(DigitsError, match="must end in .keras"):
        save_keras(flat, tmp_path / "flat.h5")


def test_cli(saved, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # the ring (class 0) already spans 20x20 and is centred: center=True (the CLI's default)
    # leaves it as the model saw it in training
    Image.fromarray(255 - digit_pixels(0)).save(tmp_path / "d.png")
    assert predict.main([str(saved["softmax"]), str(tmp_path / "d.png")]) == 0
    out = capsys.readouterr().out.strip().split("\t")
    assert out[0] == str(tmp_path / "d.png") and out[1] == "0" and 0.5 < float(out[2]) <= 1
    assert predict.main([str(saved["softmax"]), str(tmp_path / "nope.png")]) == 2
    assert "image file not found" in capsys.readouterr().err
    assert predict.main([]) == 2
