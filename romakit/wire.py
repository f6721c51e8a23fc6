"""Wire facts of the two services that both the clients and the sandbox need.

The sandbox (:mod:`romakit.sim`) imports nothing of the clients but this module, so a
limit or default written here is the same on both sides of the wire.
"""

from __future__ import annotations

#: ROMA Connect LINK: the documented range of device ids (DeviceInfoSimple.id)
LINK_ID_MIN, LINK_ID_MAX = 1, 99_999_999_999_999_999
#: ROMA Connect LINK: ListDevices' largest page
LINK_PAGE_LIMIT = 999
#: ROMA Connect LINK: most device ids one force-offline / delete request carries
LINK_MAX_IDS = 999_999
#: IoTDA ``$sub_device_manager``: most devices per delete, add and status request
IOTDA_MAX_DELETE = 50
IOTDA_MAX_ADD = 50
IOTDA_MAX_STATUS = 100
#: IoTDA MQTT login: ``sig`` 0 = the client id's hour stamp is not checked (the default
#: of the device SDKs, and of both romakit's gateway and the sandbox broker)
IOTDA_DEFAULT_SIG = 0
#: IoTDA application REST: ListDevices' largest page (``limit`` 1..50) and largest ``offset``
IOTDA_PAGE_LIMIT = 50
IOTDA_MAX_OFFSET = 500
#: IoTDA: upstream messages per second a gateway is paced at unless told otherwise. The
#: smallest editions allow about 10 upstream messages/s per unit and drop the rest
#: (50/s is the per-device ceiling of larger ones); 10 is safe everywhere.
IOTDA_DEFAULT_RATE = 10.0
#: every sandbox's LINK instance id starts so (``5a4db0c5``, "sandbox" as far as hex
#: spells it; the rest comes from its seed), so that a client, a profile or the command
#: line pointed at a sandbox is known as one wherever it runs: its runs are journaled in
#: the sandbox journal, apart from the real one (:func:`is_sandbox_instance`)
SANDBOX_INSTANCE_PREFIX = "5a4db0c5-"


def is_sandbox_instance(instance_id: object) -> bool:
    """True for a LINK instance id that a romakit sandbox made (:data:`SANDBOX_INSTANCE_PREFIX`)."""
    return isinstance(instance_id, str) and instance_id.lower().startswith(SANDBOX_INSTANCE_PREFIX)
