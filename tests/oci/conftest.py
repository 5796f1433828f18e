from tests.support.ocireg import oci_ca, ocireg, ocireg_basic, ocireg_token  # noqa: F401
