"""IoTDA gateway client: child-device management over MQTT (``$sub_device_manager``).

``auth`` (login), ``envelope`` (messages), ``recorder`` (down events), ``checks`` (input),
``chunks`` (each chunk's request and rows) and ``correlator`` (answers to requests, by
``event_id``) load without paho; ``session`` (the MQTT connection) and ``gateway``
(:class:`~romakit.iotda.gateway.AsyncGateway` and its sync twin
:class:`~romakit.iotda.gateway.Gateway`) run on paho-mqtt 2: ``rk.Gateway`` and
``rk.AsyncGateway`` load them on first use.
"""
