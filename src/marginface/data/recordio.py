"""MXNet RecordIO (.rec + .idx), the format of insightface's training sets, read without mxnet.

Format (dmlc-core recordio, little-endian):
- .idx: a text file, one "key<TAB>offset" line per record: the byte offset of the record in .rec.
- .rec: records, each a uint32 magic 0xced7230a, a uint32 `lrecord` (upper 3 bits: continuation
  flag, lower 29 bits: payload length), the payload, zero-padded to a multiple of 4 bytes. A payload
  holding the magic at a 4-aligned position is written as parts with flags 1 (first), 2 (middle),
  3 (last), the magic itself left out between parts; flag 0 is a whole record.
- image record payload: an IRHeader `<IfQQ` (flag uint32, label float32, id uint64, id2 uint64);
  when flag > 0, `flag` float32 labels follow (and the header label is unused); then the encoded
  image (JPEG/PNG).

insightface's train.rec (faces_webface_112x112, faces_emore, ...): record 0 is a header whose labels
are (first identity key, end identity key); image records have keys 1 .. first-1, and each identity
record (keys first .. end-1) holds the range (start, end) of its image keys. RecordIODataset reads
record 0; if it is such a header it takes the image keys and their labels from the identity records
(as insightface's own loader does: one read per identity, not per image; identity i, in key order,
gets label i). Without a header (an im2rec-style .rec), every record is an image, and its label is
read from each record's IRHeader (the first of its labels when it has several).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from marginface.data.base import DataError, LazyFaceSet
from marginface.data.images import as_pair, check_channels, decode_image, require_path

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_RECORD_HEAD = struct.Struct("<II")
_IR_HEADER = struct.Struct("<IfQQ")
_LENGTH_BITS = 29
_MAX_LENGTH = (1 << _LENGTH_BITS) - 1


@dataclass(frozen=True)
class IRHeader:
    """The header of an image record: `labels` holds the float32 labels (one when flag == 0)."""

    flag: int
    labels: tuple[float, ...]
    id: int
    id2: int


def _name(file: BinaryIO) -> str:
    return str(getattr(file, "name", "<stream>"))


def read_record(file: BinaryIO, offset: int) -> bytes:
    """The payload of the record at `offset` in an open .rec file, its parts joined."""
    parts, position, first = [], int(offset), True
    while True:
        file.seek(position)
        head = file.read(_RECORD_HEAD.size)
        if len(head) < _RECORD_HEAD.size:
            where = "is at or past the end of" if not head else "cuts off a record header in"
            raise DataError(
                f"offset {position} (record at offset {offset}) {where} {_name(file)}: the .rec is "
                "truncated or its .idx does not belong to it"
            )
        magic, lrecord = _RECORD_HEAD.unpack(head)
        if magic != MAGIC:
            raise DataError(
                f"no record at offset {position} in {_name(file)} (record at offset {offset}): read "
                f"magic {magic:#010x}, expected {MAGIC:#010x}; the .idx does not match the .rec "
                "or the file is damaged"
            )
        cflag, length = lrecord >> _LENGTH_BITS, lrecord & _MAX_LENGTH
        if cflag > 3 or (cflag in (2, 3)) == first:
            raise DataError(
                f"record part at offset {position} in {_name(file)} has continuation flag {cflag}, "
                f"which cannot {'start' if first else 'continue'} a record (record at offset {offset})"
            )
        payload = file.read(length)
        if len(payload) < length:
            raise DataError(
                f"truncated record at offset {position} in {_name(file)}: {len(payload)} of "
                f"{length} payload bytes (record at offset {offset})"
            )
        parts.append(payload)
        if cflag in (0, 3):
            return _MAGIC_BYTES.join(parts)
        position += _RECORD_HEAD.size + ((length + 3) & ~3)
        first = False


def unpack_record(record: bytes, where: str = "record") -> tuple[IRHeader, bytes]:
    """(IRHeader, encoded image bytes) from an image record's payload."""
    if len(record) < _IR_HEADER.size:
        raise DataError(
            f"{where}: {len(record)} bytes, shorter than the {_IR_HEADER.size}-byte image header"
        )
    flag, label, id1, id2 = _IR_HEADER.unpack_from(record)
    end = _IR_HEADER.size + 4 * flag
    if len(record) < end:
        raise DataError(f"{where}: header announces {flag} labels but the record ends first")
    labels = (
        tuple(float(v) for v in np.frombuffer(record, "<f4", count=flag, offset=_IR_HEADER.size))
        if flag > 0
        else (float(label),)
    )
    return IRHeader(flag, labels, id1, id2), record[end:]


def read_index(path_idx: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(keys, offsets) from a .idx file, both int64 and sorted by key."""
    keys, offsets = [], []
    with open(path_idx, encoding="ascii") as file:
        for number, line in enumerate(file, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or not all(f.isdigit() for f in fields):
                raise DataError(
                    f"{path_idx}, line {number}: expected 'key<TAB>offset' (two non-negative "
                    f"integers), got {line.strip()!r}"
                )
            keys.append(int(fields[0]))
            offsets.append(int(fields[1]))
    if not keys:
        raise DataError(f"{path_idx} lists no records")
    keys_array, offsets_array = np.asarray(keys, np.int64), np.asarray(offsets, np.int64)
    order = np.argsort(keys_array, kind="stable")
    return keys_array[order], offsets_array[order]


class RecordIODataset(LazyFaceSet):
    """Images of a RecordIO .rec/.idx pair decoded on demand (insightface train.rec or im2rec).

    `path_idx` defaults to `path_rec` with suffix .idx. The .rec is opened on first use in each
    process (a pickled copy, as sent to DataLoader workers, carries no open file). Labels and the
    header convention are described in the module docstring; identity names are the label numbers.
    """

    def __init__(
        self,
        path_rec: str | os.PathLike,
        path_idx: str | os.PathLike | None = None,
        channels: int = 3,
        size: Sequence[int] | None = None,
        crop: Sequence[int] | None = None,
    ) -> None:
        self.channels = check_channels(channels)
        self.size, self.crop = as_pair(size, "size"), as_pair(crop, "crop")
        rec = require_path(path_rec, "RecordIO .rec", "insightface .rec", directory=False)
        idx = Path(path_idx) if path_idx is not None else rec.with_suffix(".idx")
        idx = require_path(idx, "RecordIO .idx", "insightface .rec", directory=False)
        self.path_rec, self.path_idx = str(rec), str(idx)
        self._file: BinaryIO | None = None
        self._pid: int | None = None
        self._keys, self._key_offsets = read_index(idx)
        image_keys, raw_labels = self._read_labels()
        self.offsets = self._offsets_of(image_keys)
        values, labels = np.unique(raw_labels, return_inverse=True)
        self.labels = torch.from_numpy(labels.astype(np.int64))
        self.identities = [str(int(v)) if float(v).is_integer() else str(float(v)) for v in values]
        self.close()  # reopened on first use, in whichever process that is

    # -- reading ----------------------------------------------------------------------------
    def _handle(self) -> BinaryIO:
        # A forked worker must not share the parent's file position: reopen in each process.
        if self._file is None or self._pid != os.getpid():
            self._file = open(self.path_rec, "rb")  # noqa: SIM115 - kept open across calls
            self._pid = os.getpid()
        return self._file

    def _offsets_of(self, keys: np.ndarray) -> np.ndarray:
        where = np.searchsorted(self._keys, keys)
        missing = (where >= len(self._keys)) | (
            self._keys[np.minimum(where, len(self._keys) - 1)] != keys
        )
        if missing.any():
            raise DataError(
                f"{self.path_idx} has no entry for record key {int(keys[missing][0])} "
                f"({int(missing.sum())} keys missing) that {self.path_rec} needs"
            )
        return self._key_offsets[where]

    def _header_at(self, key: int) -> IRHeader:
        """The IRHeader of record `key`, reading only its first bytes when it is a one-part record."""
        offset = int(self._offsets_of(np.array([key]))[0])
        where = f"{self.path_rec} record {key} at offset {offset}"
        file = self._handle()
        file.seek(offset)
        head = file.read(_RECORD_HEAD.size + _IR_HEADER.size)
        if len(head) == _RECORD_HEAD.size + _IR_HEADER.size and head[:4] == _MAGIC_BYTES:
            lrecord = _RECORD_HEAD.unpack_from(head)[1]
            flag = _IR_HEADER.unpack_from(head, _RECORD_HEAD.size)[0]
            length = lrecord & _MAX_LENGTH
            if lrecord >> _LENGTH_BITS == 0 and length >= _IR_HEADER.size + 4 * flag:
                start = head[_RECORD_HEAD.size :] + file.read(4 * flag)
                return unpack_record(start, where)[0]
        return unpack_record(read_record(file, offset), where)[
            0
        ]  # multi-part or damaged: full read

    def _read_labels(self) -> tuple[np.ndarray, np.ndarray]:
        """(image keys, label value per image) following the module docstring's rules."""
        if self._keys[0] == 0:
            header = self._header_at(0)
            if header.flag > 0 and len(header.labels) >= 2:
                first, end = int(header.labels[0]), int(header.labels[1])
                if 1 < first < end <= int(self._keys[-1]) + 1:
                    return self._labels_from_identities(first, end)
        values = np.array([self._header_at(int(key)).labels[0] for key in self._keys])
        return self._keys, values

    def _labels_from_identities(self, first: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        image_keys = np.arange(1, first, dtype=np.int64)
        labels = np.full(len(image_keys), -1.0)
        for ordinal, key in enumerate(range(first, end)):
            bounds = self._header_at(key).labels
            if len(bounds) < 2 or not 1 <= int(bounds[0]) <= int(bounds[1]) <= first:
                raise DataError(
                    f"{self.path_rec}: identity record {key} holds image range {bounds}, expected "
                    f"(start, end) within the image keys 1..{first - 1} announced by record 0"
                )
            labels[int(bounds[0]) - 1 : int(bounds[1]) - 1] = ordinal
        if (labels < 0).any():
            raise DataError(
                f"{self.path_rec}: record 0 announces image keys 1..{first - 1} and identity keys "
                f"{first}..{end - 1}, but {int((labels < 0).sum())} image keys belong to no identity"
            )
        return image_keys, labels

    def __getitem__(self, index: int) -> torch.Tensor:
        offset = int(self.offsets[int(index)])
        where = f"{self.path_rec} (record at offset {offset})"
        _, image = unpack_record(read_record(self._handle(), offset), where)
        return decode_image(image, self.channels, self.size, self.crop, name=where)

    # -- life cycle -------------------------------------------------------------------------
    def close(self) -> None:
        if getattr(self, "_file", None) is not None:
            self._file.close()
            self._file = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None, "_pid": None}

    def __del__(self) -> None:
        self.close()


# -- writing (test fixtures and docs) -------------------------------------------------------
def pack_record(label: float | Sequence[float], image: bytes, id: int = 0, id2: int = 0) -> bytes:
    """An image record payload: IRHeader, extra float32 labels when `label` is a sequence, image."""
    if isinstance(label, int | float):
        return _IR_HEADER.pack(0, float(label), id, id2) + image
    labels = np.asarray(label, dtype="<f4")
    return _IR_HEADER.pack(labels.size, 0.0, id, id2) + labels.tobytes() + image


def write_record(file: BinaryIO, payload: bytes) -> None:
    """Append one record, split into parts around 4-aligned copies of the magic (as dmlc-core does)."""
    if len(payload) > _MAX_LENGTH:
        raise ValueError(f"a record holds at most {_MAX_LENGTH} bytes, got {len(payload)}")
    cuts = [i for i in range(0, len(payload) - 3, 4) if payload[i : i + 4] == _MAGIC_BYTES]
    starts, stops = [0] + [cut + 4 for cut in cuts], [*cuts, len(payload)]
    for part, (start, stop) in enumerate(zip(starts, stops, strict=True)):
        last = part == len(cuts)
        cflag = 0 if not cuts else 1 if part == 0 else 3 if last else 2
        length = stop - start
        file.write(_RECORD_HEAD.pack(MAGIC, (cflag << _LENGTH_BITS) | length))
        file.write(payload[start:stop])
        file.write(b"\0" * (-length % 4))


def write_recordio(
    path_rec: str | os.PathLike,
    path_idx: str | os.PathLike,
    items: Iterable[tuple[int, bytes]],
    header: bool = True,
) -> None:
    """Write (label, encoded image) items as a .rec/.idx pair (for test fixtures and docs).

    header=True writes insightface's layout (module docstring); labels must then be 0..K-1 in runs,
    in order. header=False writes one image record per item, keys 0..N-1.
    """
    items = list(items)
    labels = [int(label) for label, _ in items]
    records: list[tuple[int, bytes]] = []
    if not header:
        records = [
            (key, pack_record(label, image, id=key)) for key, (label, image) in enumerate(items)
        ]
    else:
        if labels != sorted(labels) or sorted(set(labels)) != list(range(len(set(labels)))):
            raise ValueError("header=True needs labels 0..K-1 in runs, in increasing order")
        first = len(items) + 1
        end = first + len(set(labels))
        records.append((0, pack_record((first, end), b"")))
        records += [(key, pack_record(lab, img, id=key)) for key, (lab, img) in enumerate(items, 1)]
        bounds = np.searchsorted(np.asarray(labels), np.arange(end - first + 1)) + 1
        records += [
            (first + i, pack_record((int(bounds[i]), int(bounds[i + 1])), b"", id=first + i))
            for i in range(end - first)
        ]
    with open(path_rec, "wb") as rec, open(path_idx, "w", encoding="ascii") as idx:
        for key, payload in records:
            idx.write(f"{key}\t{rec.tell()}\n")
            write_record(rec, payload)
