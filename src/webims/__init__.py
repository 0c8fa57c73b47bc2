"""webims: WebRTC access to IMS (3GPP TS 24.371)."""

__version__ = "0.1.0"
