"""The S-CSCF (TS 24.229 5.4): the registrar of the home network and the
notifier of the reg event package, with the serving routing of originating
and terminating requests.

* :mod:`.registrar`: the registrar's state, one :class:`~.registrar.Registration`
  per implicit registration set, behind the :class:`~.registrar.RegistrarStore`
  interface.
* :mod:`.registration`: REGISTER (5.4.1.1–5.4.1.4): trusted-node ``auth-done``
  (TS 33.203 Annex U / X.3) or SIP Digest through MAR (:mod:`.digest`), SAR,
  the authorisation-entity checks, the 200 OK of 5.4.1.2.2F.
* :mod:`.lifecycle`: what ends or changes a registration: expiry, user,
  administrative and HSS-initiated deregistration (RTR), profile push (PPR).
* :mod:`.regevent`: the RFC 3680 notifier (5.4.2.1).
* :mod:`.routing`: originating (5.4.3.2) and terminating (5.4.3.3) requests.
* :mod:`.element`: the running element.
"""
