"""What the CSCFs share: the deployment's names and addresses
(:mod:`.topology`), the trusted-peer check (:mod:`.trust`), the asyncio
shell of a CSCF (:mod:`.element`) and the charging identifiers (:mod:`.charging`)."""
