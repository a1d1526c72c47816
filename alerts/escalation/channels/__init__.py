"""Delivery channels behind one interface (`base.Channel`): SIP voice, signed webhook, SMS / cloud
voice HTTP gateway, GB/T 26875.3 user-information transmission. The duty-room console is delivered
by the worker itself (the alarm's 'notified' transition reaches the live console)."""

from __future__ import annotations

from pathlib import Path

from alerts.escalation.channels.base import Channel
from alerts.escalation.channels.gbt26875 import Gbt26875Channel, GbtConfig
from alerts.escalation.channels.http import GatewayChannel, GatewayConfig, WebhookChannel
from alerts.escalation.channels.sip import SipChannel, SipConfig
from alerts.escalation.config import LinkageSettings
from yiju.errors import ConfigurationError


def build_channels(settings: LinkageSettings, prompt_dir: Path) -> dict[str, Channel]:
    """The channels the settings configure. Webhook and GB/T 26875.3 need no server settings (their
    endpoints are rows); SIP needs a proxy, SMS/voice a gateway. A step on a channel that is not
    configured fails visibly (recorded in the incident's timeline), it is never silently skipped."""
    channels: dict[str, Channel] = {
        "webhook": WebhookChannel(settings.webhook_timeout_s),
        "gbt26875": Gbt26875Channel(
            GbtConfig(
                confirm_timeout_s=settings.gbt26875.confirm_timeout_s, resends=settings.gbt26875.resends
            )
        ),
    }
    sip = settings.sip
    if sip.proxy:
        host, _, port = sip.proxy.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigurationError(f"linkage.sip.proxy must be host:port, not {sip.proxy!r}")
        channels["sip"] = SipChannel(
            SipConfig(
                proxy_host=host,
                proxy_port=int(port),
                local_host=sip.local_host,
                from_user=sip.from_user,
                ring_timeout_s=sip.ring_timeout_s,
                prompt_repeats=sip.prompt_repeats,
                ack_digit=sip.ack_digit,
                answer_wait_after_prompt_s=sip.answer_wait_after_prompt_s,
                prompt_dir=prompt_dir,
            )
        )
    gw = settings.gateway
    if gw.base_url:
        config = GatewayConfig(
            base_url=gw.base_url,
            access_key=gw.access_key,
            secret=gw.secret,
            sms_template=gw.sms_template,
            voice_template=gw.voice_template,
            receipt_timeout_s=gw.receipt_timeout_s,
            receipt_poll_s=gw.receipt_poll_s,
        )
        channels["sms"] = GatewayChannel(config, "sms")
        channels["voice"] = GatewayChannel(config, "voice")
    return channels
