import io
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from marginface.data.base import DataError
from marginface.data.recordio import (
    MAGIC,
    RecordIODataset,
    pack_record,
    read_index,
    read_record,
    unpack_record,
    write_record,
    write_recordio,
)

MAGIC_BYTES = struct.pack("<I", MAGIC)


def test_insightface_layout_round_trips_labels_and_png_pixels(rec_fixture):
    dataset = RecordIODataset(rec_fixture.rec, channels=1)
    assert len(dataset) == 20 and dataset.num_identities == 5
    assert dataset.labels.tolist() == rec_fixture.labels
    assert dataset.identities == ["0", "1", "2", "3", "4"]
    for i in (0, 6, 19):
        np.testing.assert_array_equal(dataset[i][0].numpy(), rec_fixture.arrays[i])


def test_the_header_record_and_identity_records_are_laid_out_as_insightface_does(rec_fixture):
    keys, offsets = read_index(rec_fixture.idx)
    assert keys.tolist() == list(range(26))  # header, 20 images, 5 identities
    with open(rec_fixture.rec, "rb") as file:
        header, image = unpack_record(read_record(file, int(offsets[0])))
        assert header.flag == 2 and header.labels == (21.0, 26.0) and image == b""
        header, _ = unpack_record(read_record(file, int(offsets[22])))  # identity 1
        assert header.labels == (5.0, 9.0)
        header, _ = unpack_record(read_record(file, int(offsets[5])))  # image key 5
        assert header.flag == 0 and header.labels == (1.0,) and header.id == 5


def test_rec_without_header_reads_each_records_label(tmp_path: Path, rec_fixture, encode_image):
    items = [
        (label, encode_image(a)) for label, a in zip([7, 3, 7, 9], rec_fixture.arrays, strict=False)
    ]
    write_recordio(tmp_path / "a.rec", tmp_path / "a.idx", items, header=False)
    dataset = RecordIODataset(tmp_path / "a.rec", tmp_path / "a.idx", size=(56, 46))
    assert dataset.identities == ["3", "7", "9"]
    assert dataset.labels.tolist() == [1, 0, 1, 2]
    assert dataset[1].shape == (3, 56, 46)


def test_multi_label_records_use_their_first_label(tmp_path: Path, rec_fixture, encode_image):
    image = encode_image(rec_fixture.arrays[0])
    with open(tmp_path / "m.rec", "wb") as rec, open(tmp_path / "m.idx", "w") as idx:
        for key, labels in enumerate([(4.0, 0.5, 0.25), (2.0, 1.0)]):
            idx.write(f"{key}\t{rec.tell()}\n")
            write_record(rec, pack_record(labels, image))
    dataset = RecordIODataset(tmp_path / "m.rec", channels=1)
    assert dataset.identities == ["2", "4"] and dataset.labels.tolist() == [1, 0]
    np.testing.assert_array_equal(dataset[0][0].numpy(), rec_fixture.arrays[0])


@settings(max_examples=60, deadline=None)
@given(
    chunks=st.lists(st.binary(max_size=13), max_size=6),
    magic_at=st.lists(st.integers(0, 5), max_size=4),
)
def test_records_round_trip_even_with_the_magic_inside(chunks, magic_at):
    parts = list(chunks)
    for position in magic_at:
        parts.insert(min(position, len(parts)), MAGIC_BYTES)
    payloads = [b"".join(parts), b"tail"]
    file, offsets = io.BytesIO(), []
    for payload in payloads:
        offsets.append(file.tell())
        write_record(file, payload)
    assert file.tell() % 4 == 0
    assert [read_record(file, offset) for offset in offsets] == payloads


def test_aligned_magic_splits_a_record_into_flagged_parts():
    file = io.BytesIO()
    write_record(file, b"abcd" + MAGIC_BYTES + b"xy")
    raw = file.getvalue()
    first = struct.unpack_from("<II", raw)
    assert first == (MAGIC, (1 << 29) | 4)  # part 1 of several: "abcd"
    assert struct.unpack_from("<II", raw, 12) == (MAGIC, (3 << 29) | 2)  # last part: "xy"
    assert read_record(file, 0) == b"abcd" + MAGIC_BYTES + b"xy"


def test_truncated_rec_names_the_offset_and_the_file(rec_fixture):
    dataset = RecordIODataset(rec_fixture.rec)
    last_image = int(dataset.offsets[19])
    rec_fixture.rec.write_bytes(rec_fixture.rec.read_bytes()[: last_image + 100])
    with pytest.raises(DataError, match=f"truncated record at offset {last_image} in .*train.rec"):
        dataset[19]
    with open(rec_fixture.rec, "rb") as file, pytest.raises(DataError, match="cuts off a record"):
        read_record(file, last_image + 96)
    with pytest.raises(DataError, match="past the end of .*train.rec"):
        RecordIODataset(rec_fixture.rec)  # the identity records are gone


def test_idx_offsets_that_miss_records_or_pass_the_end(rec_fixture):
    keys, offsets = read_index(rec_fixture.idx)
    size = rec_fixture.rec.stat().st_size
    with open(rec_fixture.rec, "rb") as file:
        with pytest.raises(DataError, match=f"no record at offset {int(offsets[3]) + 4} .*magic"):
            read_record(file, int(offsets[3]) + 4)
        with pytest.raises(DataError, match=f"offset {size + 40} .* past the end of .*train.rec"):
            read_record(file, size + 40)
    lines = rec_fixture.idx.read_text().splitlines()
    lines[7] = f"7\t{size + 40}"
    rec_fixture.idx.write_text("\n".join(lines) + "\n")
    dataset = RecordIODataset(rec_fixture.rec)
    with pytest.raises(DataError, match=f"offset {size + 40}"):
        dataset[6]


def test_malformed_idx_line_is_named(rec_fixture):
    rec_fixture.idx.write_text("0\t0\n1 oops\n")
    with pytest.raises(DataError, match="train.idx, line 2: expected 'key<TAB>offset'"):
        read_index(rec_fixture.idx)


def test_identity_ranges_that_miss_images_are_an_error(tmp_path: Path, encode_image, rec_fixture):
    image = encode_image(rec_fixture.arrays[0])
    records = [pack_record((4, 6), b""), pack_record(0, image), pack_record(0, image)]
    records += [pack_record(0, image), pack_record((1, 3), b""), pack_record((3, 3), b"")]
    with open(tmp_path / "x.rec", "wb") as rec, open(tmp_path / "x.idx", "w") as idx:
        for key, payload in enumerate(records):
            idx.write(f"{key}\t{rec.tell()}\n")
            write_record(rec, payload)
    with pytest.raises(DataError, match="1 image keys belong to no identity"):
        RecordIODataset(tmp_path / "x.rec")


def test_dataset_pickles_without_its_open_file_and_works_in_workers(rec_fixture):
    dataset = RecordIODataset(rec_fixture.rec, channels=1)
    first = dataset[0]
    assert dataset._file is not None
    clone = pickle.loads(pickle.dumps(dataset))
    assert clone._file is None and torch.equal(clone[0], first)
    loader = torch.utils.data.DataLoader(dataset, batch_size=10, num_workers=2)
    batches = list(loader)
    assert torch.equal(torch.cat(batches)[:, 0], torch.from_numpy(np.stack(rec_fixture.arrays)))
