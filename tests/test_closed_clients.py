"""A client used after it was closed (by itself, by its sandbox's close, by a notebook's
clean-up) says so with :class:`romakit.ClientClosed`: one line in a notebook, nothing
sent, never httpx's "Cannot send a request, as the client has been closed"; the widgets
show it as a message."""

from __future__ import annotations

import asyncio

import pytest

import romakit as rk
from romakit.widgets import ActionPanel, DevicePicker

pytestmark = pytest.mark.timeout(120)


@pytest.fixture()
def own():
    """A sandbox of this test's own (it is closed by the test)."""
    with rk.sandbox(devices=120, seed=41) as s:
        yield s


def _refused(call) -> rk.ClientClosed:
    with pytest.raises(rk.ClientClosed) as info:
        call()
    assert "Cannot send a request" not in str(info.value)
    assert isinstance(info.value, rk.InputError)  # refused before anything was sent
    return info.value


def test_a_closed_link_client_refuses_every_call_with_a_clear_error(own):
    link = own.link_client(progress=False)
    ids = link.devices()["id"].tolist()[:3]
    link.close()
    requests = len(own.link.requests)
    for call in (link.devices, lambda: link.device(ids[0]), link.preflight, lambda: link.force_offline(ids),
                 lambda: link.device_page(0, 1), lambda: rk.console(link)):
        e = _refused(call)
        assert f"LinkClient for instance {link.instance_id} was closed" in str(e) and "set-up cell" in str(e)
    assert len(own.link.requests) == requests  # nothing reached the sandbox
    # in a notebook, IPython shows the one line (the exception's hook), not a stack
    assert e._render_traceback_() == [f"ClientClosed: {e}"]


def test_the_async_client_says_the_same(own):
    c = own.credentials

    async def go() -> str:
        a = rk.AsyncLinkClient(own.link_endpoint, c.project_id, c.instance_id, rk.AkSk(c.ak, c.sk), progress=False)
        await a.aclose(reason="closed by the test")
        with pytest.raises(rk.ClientClosed) as info:
            await a.devices()
        return str(info.value)

    assert "(closed by the test)" in asyncio.run(go())


def test_closing_the_sandbox_closes_what_it_handed_out(own):
    link = own.link_client(progress=False)
    iot = own.iotda_client()
    gw_id = next(g for g in own.gateways() if own.children(g))
    gw = own.gateway(gw_id).connect()
    assert not gw.closed and not iot.closed and not link.closed
    own.close()
    assert link.closed and iot.closed and gw.closed and not gw.connected
    why = "(its sandbox was closed)"
    assert why in str(_refused(link.devices))
    assert why in str(_refused(iot.devices)) and "IotdaClient" in str(_refused(iot.devices))
    for call in (gw.connect, gw.children, lambda: gw.delete_sub_devices(own.children(gw_id)[:1])):
        assert f"Gateway {gw_id} was closed {why}" in str(_refused(call))
    for call in (own.link_client, own.iotda_client, lambda: own.gateway(gw_id)):
        assert "this sandbox was closed" in str(_refused(call))


def test_a_gateway_closed_by_hand_logs_in_again(own):
    gw_id = next(g for g in own.gateways() if own.children(g))
    gw = own.gateway(gw_id)
    with gw:
        assert gw.connected
    assert not gw.closed  # a plain close only disconnects
    with gw:
        assert gw.connected


def test_the_widgets_show_a_closed_client_as_a_message(own):
    link = own.link_client(progress=False)
    fleet = link.devices()
    con = rk.console(link, fleet=fleet)
    picker = DevicePicker(fleet)
    panel = ActionPanel(link, picker)
    picker.select(fleet["id"].tolist()[:2])
    own.close()
    con.refresh_button.click()  # a relist on a closed client: said in the console, not raised
    assert "was closed (its sandbox was closed)" in con.note.value
    panel.preview_button.click()
    assert panel.disabled_reason and "was closed" in panel.message and "nothing was sent" in panel.message
    assert panel.run_button.disabled and panel.preview_button.disabled
