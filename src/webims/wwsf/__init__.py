"""WWSF: the WebRTC web server function of TS 24.371, co-located with the WAF.

It serves the WIC (the browser application) on one HTTPS origin, logs web
users in, maps each web identity to its IMS identities (IMPI, IMPUs), lends
guests an identity of its pool (TS 33.203 X.4), and mounts the WAF, which
issues the access tokens (Annex A.3.2 step 1).

    db.py           the SQLite file (WAL) and its migrations
    accounts.py     web accounts: argon2id hashes, linked IMPI/IMPUs
    pool.py         the identity pool: lend, renew, give back
    sessions.py     server-side sessions named by a signed cookie
    limits.py       failed-login limits per user and per address
    app.py          the Starlette app: login, logout, guest, /api/config, the WIC
    server.py       uvicorn over TLS inside the running loop
    element.py      the running element (webims run wwsf|waf, webims up)
    provisioning.py demo web accounts, the pool's HSS subscriptions
"""
