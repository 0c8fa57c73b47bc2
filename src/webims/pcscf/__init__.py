"""The eP-CSCF (TS 24.371 clause 6.3/7.3): the WIC's entry point into the IMS.

So far only its Bearer token validation (``webims.pcscf.token``); the SIP side comes later.
"""
