"""The picker reads LINK ids as ``link_ids`` does: exact values select their device,
values that may stand for another id (a float past 2**53, a boolean) select nothing and
are reported."""

from __future__ import annotations

import numpy as np

from romakit.widgets import DevicePicker

BIG = 12_345_678_901_234_567


def test_picker_reads_ids_exactly_as_link_ids_does(link):
    fleet = link.devices()
    ids = fleet["id"].tolist()
    p = DevicePicker(fleet)
    unknown = p.select([float(ids[0]), np.int64(ids[1]), f" +{ids[2]} ", True, float(BIG), f"{ids[4]}.5"])
    assert p.selected == ids[:3]
    assert unknown == ["True", repr(float(BIG)), f"{ids[4]}.5"]
    p.paste.value = f"{ids[5]}.0, {BIG}.0"  # a whole number written as a float below 2**53 is exact
    p.paste_button.click()
    assert p.selected == [*ids[:3], ids[5]] and p.unknown_pasted == [f"{BIG}.0"]
