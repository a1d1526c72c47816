"""Delivery channels behind one interface (`base.Channel`): SIP voice, signed webhook, SMS / cloud
voice HTTP gateway, GB/T 26875.3 user-information transmission, and the duty-room console."""
