"""IoTDA gateway client: child-device management over MQTT (``$sub_device_manager``).

``auth`` (login), ``envelope`` (messages), ``recorder`` (down events) load without
paho; ``gateway`` (:class:`~romakit.iotda.gateway.Gateway`, on paho-mqtt 2) is what
``rk.Gateway`` loads on first use.
"""
