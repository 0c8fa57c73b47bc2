"""The eP-CSCF (TS 24.371 clause 6.3/7.3): the WIC's entry point into the IMS.

``element``   ``make(settings)``: the CSCF shell, the listeners, the token validator
``app``       the procedures over the proxy core, by the side a request came from
``register``  the WIC's web-authenticated REGISTER and its 200 (SPEC §1.4 A, B, F)
``routing``   originating, in-dialog and terminating requests (SPEC §1.4 C, D)
``regevent``  the eP-CSCF's reg event subscription (TS 24.229 5.2.3, SPEC §1.4 G)
``bindings``  identities bound to connections (TS 33.203 X.3 step 7.1)
``token``     Bearer token validation against the WAF (local JWT or introspection)
"""
