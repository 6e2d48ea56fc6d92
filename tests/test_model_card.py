"""Model cards: parsing, checking, labels, and how ``Model.load`` uses them."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from robovision.errors import ConfigError, ModelFormatError
from robovision.frame import PixelLayout
from robovision.model import Model, guess_decoder
from robovision.model_card import ModelCard, card_keys
from robovision.model_file import read_model_file
from robovision.tensor_spec import TensorSpec

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "models" / "reference"
SSD = REFERENCE / "ssd_mobilenet_v1_1_metadata_1.tflite"
MOBILENET_U8 = REFERENCE / "mobilenet_v1_0.25_128_quant.tflite"
MOBILENET_I8 = REFERENCE / "mobilenet_v1_0.25_128_quant_int8.tflite"
CAR_PHOTO = ROOT / "data" / "toycars" / "images" / "cf5f6825-IMG_0447.jpg"


def write_card(folder: Path, text: str, stem: str = "model") -> Path:
    path = folder / f"{stem}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_model_without_card_gets_the_defaults(tmp_path: Path) -> None:
    card = ModelCard.for_model(tmp_path / "model.tflite")

    assert card == ModelCard()
    assert card.path is None and card.given == frozenset()
    assert (card.decoder, card.labels, card.label_offset) == (None, None, 0)
    assert (card.channel_order, card.resize) == ("rgb", "stretch")
    assert (card.score_threshold, card.iou_threshold, card.max_detections) == (0.5, 0.5, 20)
    assert card.class_filter is None


def test_the_ssd_reference_card_reads_embedded_coco_labels_with_offset() -> None:
    card = ModelCard.for_model(SSD)

    labels = card.read_labels(read_model_file(SSD))

    assert card.path == SSD.with_suffix(".toml")
    assert (card.decoder, card.labels, card.label_offset) == ("ssd", "embedded", 1)
    assert labels[:4] == ("person", "bicycle", "car", "motorcycle")
    assert "???" not in labels[:11]  # the first gap in COCO ids is after class 10


@pytest.mark.parametrize("model", [MOBILENET_U8, MOBILENET_I8])
def test_the_imagenet_cards_keep_background_at_class_0(model: Path) -> None:
    card = ModelCard.for_model(model)

    labels = card.read_labels(read_model_file(model))

    assert Path(str(card.labels)) == REFERENCE / "imagenet_labels.txt"
    assert len(labels) == 1001
    assert labels[0] == "background"
    assert labels[282] == "tabby, tabby cat"
    assert card.decoder_options == {"top_k": 5}


def test_labels_resolve_against_the_card_folder_and_offsets_shift_them(tmp_path: Path) -> None:
    folder = tmp_path / "cards"
    folder.mkdir()
    (folder / "names.txt").write_text("zero\none\ntwo\n\n", encoding="utf-8")
    model_file = read_model_file(MOBILENET_U8)

    plain = ModelCard.load(write_card(folder, 'labels = "names.txt"'))
    shifted = ModelCard.load(write_card(folder, 'labels = "names.txt"\nlabel_offset = 1', stem="b"))
    padded = ModelCard.load(write_card(folder, 'labels = "names.txt"\nlabel_offset = -2', stem="c"))

    assert plain.read_labels(model_file) == ("zero", "one", "two")
    assert shifted.read_labels(model_file) == ("one", "two")
    assert padded.read_labels(model_file) == ("0", "1", "zero", "one", "two")


def test_a_missing_labels_file_names_the_card_and_the_path(tmp_path: Path) -> None:
    card_path = write_card(tmp_path, 'labels = "absent.txt"')
    card = ModelCard.load(card_path)

    with pytest.raises(ConfigError) as caught:
        card.read_labels(read_model_file(MOBILENET_U8))

    assert str(card_path) in str(caught.value)
    assert str(tmp_path / "absent.txt") in str(caught.value)


def test_embedded_labels_on_a_model_without_them_is_a_format_error() -> None:
    card = ModelCard().with_overrides(labels="embedded")
    with pytest.raises(ModelFormatError, match="carries no label file"):
        card.read_labels(read_model_file(MOBILENET_I8))


def test_an_unknown_key_names_the_card_the_key_and_the_close_match(tmp_path: Path) -> None:
    card_path = write_card(tmp_path, "score_treshold = 0.4")

    with pytest.raises(ConfigError) as caught:
        ModelCard.load(card_path)

    message = str(caught.value)
    assert str(card_path) in message
    assert "'score_treshold'" in message
    assert "Did you mean 'score_threshold'?" in message


def test_an_unknown_key_without_a_close_match_lists_the_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Known keys: name, decoder, labels"):
        ModelCard.load(write_card(tmp_path, "colour = 3"))


def test_the_field_of_view_is_sent_to_the_camera_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[camera\] hfov_deg"):
        ModelCard.load(write_card(tmp_path, "hfov_deg = 62.2"))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('score_threshold = "high"', "score_threshold must be a number from 0 to 1"),
        ("score_threshold = 1.5", "score_threshold must be a number from 0 to 1"),
        ("iou_threshold = true", "iou_threshold must be a number from 0 to 1"),
        ("max_detections = 0", "max_detections must be 1 or more"),
        ("max_detections = 2.5", "max_detections must be a whole number"),
        ('label_offset = "1"', "label_offset must be a whole number"),
        ('channel_order = "grb"', "channel_order must be one of rgb, bgr"),
        ('resize = "fit"', "resize must be one of stretch, letterbox, crop"),
        ('class_filter = "car"', "class_filter must be a list of labels"),
        ("class_filter = [2]", "class_filter must be a list of labels"),
        ("mean = [127.5, 127.5]", "mean must be a number or a list of 3 numbers"),
        ("std = 0", "std must be a positive number"),
        ("std = [1, 0, 1]", "std must be a positive number"),
        ("decoder_options = 3", r"decoder_options must be a table \(\[decoder_options\]"),
        ('labels = ""', "labels must be a non-empty string"),
        ("name = 5", "name must be a non-empty string"),
    ],
)
def test_wrong_types_and_ranges_name_the_key(tmp_path: Path, line: str, expected: str) -> None:
    card_path = write_card(tmp_path, line)
    with pytest.raises(ConfigError, match=expected) as caught:
        ModelCard.load(card_path)
    assert str(card_path) in str(caught.value)


def test_broken_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not valid TOML"):
        ModelCard.load(write_card(tmp_path, "score_threshold = = 1"))


def test_valid_values_are_normalized(tmp_path: Path) -> None:
    card = ModelCard.load(
        write_card(
            tmp_path,
            'score_threshold = 1\nclass_filter = ["car", "truck"]\nmean = [1, 2, 3]\nstd = 2\n'
            "[decoder_options]\ntop_k = 3\n",
        )
    )

    assert card.score_threshold == 1.0 and isinstance(card.score_threshold, float)
    assert card.class_filter == ("car", "truck")
    assert card.mean == (1.0, 2.0, 3.0)
    assert card.std == 2.0
    assert card.decoder_options == {"top_k": 3}
    assert card.given == {"score_threshold", "class_filter", "mean", "std", "decoder_options"}


def test_overrides_are_checked_like_card_keys_and_none_is_ignored() -> None:
    card = ModelCard.for_model(SSD)

    changed = card.with_overrides(score_threshold=0.25, max_detections=None)

    assert changed.score_threshold == 0.25
    assert changed.max_detections == card.max_detections == 10
    assert changed.path == card.path
    with pytest.raises(ConfigError, match="model override: unknown key 'treshold'"):
        card.with_overrides(treshold=0.2)
    with pytest.raises(ConfigError, match="score_threshold must be a number from 0 to 1"):
        card.with_overrides(score_threshold=2)


def test_summary_lists_every_key_and_which_are_defaults() -> None:
    summary = ModelCard.for_model(SSD).summary()

    assert summary["card"] == str(SSD.with_suffix(".toml"))
    assert set(card_keys()) <= set(summary)
    assert summary["labels"] == "embedded"
    assert "class_filter" in summary["defaults"] and "labels" not in summary["defaults"]


def test_a_class_filter_label_not_in_the_labels_suggests_the_close_one() -> None:
    with pytest.raises(ConfigError) as caught:
        Model.load(SSD, class_filter=["cars"])
    assert "class_filter label 'cars' is not in the model's labels. Did you mean 'car'" in str(caught.value)


def test_an_unknown_decoder_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        Model.load(SSD, decoder="ssdd")

    message = str(caught.value)
    assert "unknown decoder 'ssdd'" in message
    for known in ("classification", "ssd", "yolo"):
        assert known in message


@pytest.mark.parametrize(("model", "decoder"), [(SSD, "ssd"), (MOBILENET_I8, "classification")])
def test_without_a_card_the_decoder_is_guessed_from_the_outputs(
    tmp_path: Path, model: Path, decoder: str
) -> None:
    copy = tmp_path / model.name
    shutil.copyfile(model, copy)

    loaded = Model.load(copy)

    assert loaded.decoder == decoder
    assert loaded.card.path is None
    assert loaded.params.labels == ()
    assert loaded.name == model.stem


def test_an_output_no_decoder_recognizes_asks_for_a_card() -> None:
    odd = TensorSpec(index=0, name="head", shape=(1, 8, 8, 18), dtype=np.dtype(np.float32))
    with pytest.raises(ConfigError, match=r'mobilenet_v1_0.25_128_quant.toml with decoder = "ssd"'):
        guess_decoder(read_model_file(MOBILENET_U8), [odd])


def test_card_class_filter_and_max_detections_shape_the_result() -> None:
    image = cv2.imread(str(CAR_PHOTO), cv2.IMREAD_COLOR)
    assert image is not None

    everything = Model.load(SSD, score_threshold=0.2).detect_image(image, PixelLayout.BGR).detections
    cars = Model.load(SSD, score_threshold=0.2, class_filter=["car"]).detect_image(image, PixelLayout.BGR)
    two = Model.load(SSD, score_threshold=0.2, max_detections=2).detect_image(image, PixelLayout.BGR)

    assert len({d.label for d in everything}) >= 2
    assert cars.detections == tuple(d for d in everything if d.label == "car")
    assert two.detections == everything[:2]


def test_a_card_beside_a_copied_model_is_used(tmp_path: Path) -> None:
    copy = tmp_path / "classifier.tflite"
    shutil.copyfile(MOBILENET_U8, copy)
    shutil.copyfile(REFERENCE / "imagenet_labels.txt", tmp_path / "imagenet_labels.txt")
    card_text = 'name = "pets"\nlabels = "imagenet_labels.txt"\nresize = "letterbox"'
    write_card(tmp_path, card_text, stem="classifier")

    model = Model.load(copy)

    assert model.name == "pets"
    assert model.card.resize == "letterbox"
    assert model.params.labels[282] == "tabby, tabby cat"
