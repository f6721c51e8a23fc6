"""ROMA Connect LINK device API over httpx: auth (:mod:`.auth`), client (:mod:`.client`),
wire models (:mod:`.models`). Never imports ipywidgets; pandas only where a frame is returned."""
