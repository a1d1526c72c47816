"""The fleet simulator, which drives the tests, the benchmarks and the demo: compounds (`compound`), normal
behaviour over simulated time (`behaviour`), the devices' messages (`emitter`, `stream`), scenarios with
ground truth, the bad-input set included (the `scenarios` package), and MQTT publishing (`mqtt_publisher`,
the only module here that talks to a broker; `runner` paces a stream onto it). Imports only `devices`.
Nothing is re-exported here: import the module you need.
"""
