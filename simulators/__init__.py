"""The fleet simulator: compounds (`compound`), normal behaviour over simulated time (`behaviour`),
scenarios with ground truth (`scenarios`, `bad_input`), and MQTT publishing (`mqtt_publisher`, the
only module here that talks to a broker; `runner` paces a stream onto it). Imports only `devices`.
"""
