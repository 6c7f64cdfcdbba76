"""Odd cell-list files: a huge or binary line is not echoed, a UTF-8 BOM is fine, a device is not a folder."""

from __future__ import annotations

import gzip
import os

import pytest

from study.spaces import get_space
from study.spaces.lists import read_list
from study.store.cells import read_cells
from tests.test_bad_input import assert_refused
from tests.test_cell_lists import sample

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"
OTHER = "|skip_connect~0|+|nor_conv_1x1~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"


@pytest.mark.parametrize("huge", ["q" * 1_000_000, '{"arch": "' + "q" * 1_000_000 + '"}'])
def test_a_huge_bad_line_is_named_not_echoed(inline, tmp_path, huge):
    path = tmp_path / "cells.txt"
    path.write_text(f"{ARCH}\n{huge}\n" if not huge.startswith("{") else f'{{"arch": "{ARCH}"}}\n{huge}\n')
    code, err = inline("study.sample", f"cells={path}", f"study_dir={tmp_path / 's'}")
    assert_refused((code, err), ["line 2", "fix or remove the line"])
    assert len(err) < 600, len(err)


def test_a_file_with_nul_bytes_is_not_a_cell_list_and_is_not_echoed(inline, tmp_path):
    path = tmp_path / "environ"
    path.write_bytes(b"SECRET_TOKEN=hunter2\x00HOME=/root\x00PATH=/usr/bin\x00")  # as /proc/self/environ reads
    code, err = inline("study.sample", f"cells={path}", f"study_dir={tmp_path / 's'}")
    assert_refused((code, err), [str(path), "not a text file"])
    assert "hunter2" not in err and "SECRET" not in err


@pytest.mark.parametrize("suffix", [".txt", ".jsonl", ".txt.gz"])
def test_a_list_saved_with_a_utf8_bom_is_read(tmp_path, suffix):
    lines = f"{ARCH}\n{OTHER}\n" if suffix != ".jsonl" else f'{{"arch": "{ARCH}", "id": "a"}}\n{{"arch": "{OTHER}"}}\n'
    raw = b"\xef\xbb\xbf" + lines.encode()
    path = tmp_path / f"cells{suffix}"
    path.write_bytes(gzip.compress(raw) if suffix.endswith(".gz") else raw)
    assert [e.cell.to_str() for e in read_list(get_space("nb201"), path)] == [ARCH, OTHER]
    sample(tmp_path / "s", f"cells={path}")
    assert [r["arch"] for r in read_cells(tmp_path / "s")] == [ARCH, OTHER]


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_is_not_called_a_folder(inline, tmp_path):
    assert_refused(inline("study.sample", "cells=/dev/zero", f"study_dir={tmp_path / 's'}"),
                   ["/dev/zero", "not a regular file"])
    assert_refused(inline("study.sample", f"cells={tmp_path}", f"study_dir={tmp_path / 's'}"), ["is a folder"])
