"""The feed's signatures: the repository signer, the signature checks and repository signing run as push stages,
the backfill of stored packages and the revocation revalidation task."""
