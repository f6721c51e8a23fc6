"""The sandbox: a LINK HTTP simulator, an embedded MQTT broker and an IoTDA platform
simulator over one seeded fleet. Imports nothing from romakit's clients, so they are
tested against it as against a stranger."""
