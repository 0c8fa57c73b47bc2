"""The I-CSCF (TS 24.229 5.3): the home network's entry point on Mw.

* Registration (5.3.1, :mod:`.registration`): a REGISTER from a trusted
  eP-CSCF is authorised with a UAR to the HSS and proxied to the S-CSCF the
  HSS names, or one selected by capabilities (:mod:`.selection`).
* Terminating routing (5.3.2, :mod:`.terminating`): an initial request for a
  public identity of the home domain is located with an LIR and proxied to
  the S-CSCF that serves it.

The I-CSCF keeps no state of its own between requests: it neither
Record-Routes nor adds Path, so later requests and responses of a dialog
bypass it.  :mod:`.procedures` joins these to the proxy core, and
:mod:`.element` builds the element ``webims run icscf`` starts.
"""
