"""Observability: the message trace of every element (:mod:`.trace`), read
back and drawn as a ladder of the seed's steps (:mod:`.ladder`), exported as
pcapng (:mod:`.pcap`) and shown on the WWSF's ``/trace`` page (:mod:`.web`)."""
