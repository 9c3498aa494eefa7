"""The test toolkit, one home for what several test areas share (plain helpers; the oracle, tamper, packages,
clock and network modules import nothing from ``nuseal``, so they stay independent of the code under test):

* ``oracle``: NuGet's own verifier and signer (``../shared/tools/nuget-oracle``) as an oracle; ``oracle_findings``
  records its verdicts on the vectors and the tamper matrix;
* ``tamper``: tampered copies of signed packages, one function per case of the tamper matrix;
* ``packages``: nuspec and unsigned .nupkg builders;
* ``clock``: ``VECTOR_NOW``, the frozen instant the real (expiring) vectors are judged at;
* ``network``: the fence that keeps tests on loopback (installed by ``tests/conftest.py``);
* ``softhsm``: a SoftHSM token for the PKCS#11 tests; ``vulnerability_info``: the mirror's vulnerability checks;
* ``trust``: the nuseal.trust tests' synthetic PKI (``Pki``), loopback OCSP/CRL server and the vectors' signer
  certificates.

Area fixtures stay with their area (``feed/conftest.py``, ``feed/inprocess.py``, ``sign/conftest.py``, ...).
"""
