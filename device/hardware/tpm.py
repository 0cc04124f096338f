"""The TPM backend of ``Signer``: an ECDSA P-256 record key made inside the unit's TPM 2.0.

Wired by ``device/signing`` when the config says ``[key] store = "tpm"``; this is
the only module that imports ``tpm2-pytss`` (the TSS2 ESAPI, Debian
``libtss2-dev`` to build it). The TPM is reached through a TCTI string:
``device:/dev/tpmrm0`` on a unit (the kernel's resource manager), or
``swtpm:host=127.0.0.1,port=N`` for a software TPM in tests.

How the key is kept:

- a **storage key** is derived again at every start from the TPM's owner
  hierarchy (``CreatePrimary`` with a fixed ECC template: the same TPM gives the
  same key until it is cleared); it is never stored anywhere, and is unloaded
  as soon as the record key is loaded (signing needs only the record key);
- the **record key** is created under it (``Create``, ECDSA P-256 with SHA-256,
  ``fixedTPM | fixedParent | sensitiveDataOrigin``: made in the TPM, never
  exported); the TPM hands back its public part and its private part wrapped
  (encrypted and integrity-protected) by the storage key;
- ``device.tpm`` on the data partition holds that wrapped blob, the raw public
  key and a fingerprint of the TPM's endorsement hierarchy (the SHA-256 of an
  ECC primary key's public point made there, which ``TPM2_Clear`` does not
  change). The blob is useless to anyone else: only the TPM that made it can
  load it, and only while its owner hierarchy was not cleared.

At start (``TpmSigner.load``) the fingerprint tells a card moved to another unit
(``WrongTpmError``) from a TPM that was cleared (``TpmClearedError``: the blob fails
the TPM's integrity check, ``TPM_RC_INTEGRITY``; any other refusal is a plain
``TpmError``): both stop the unit with a message pointing to docs/keys.md. A
signature is the TPM's ECDSA ``(r, s)`` over the SHA-256 of the record bytes,
returned as the 64 bytes ``r || s`` (``protocol/keys.py``).

Not run on a real Pi with a TPM module; tested against ``swtpm``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from tpm2_pytss import ESAPI, TPM2B_PRIVATE, TPM2B_PUBLIC, TPM2B_SENSITIVE_CREATE, TSS2_Exception
from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_RC, TPM2_RH, TPM2_ST
from tpm2_pytss.types import TPM2B_DIGEST, TPMT_SIG_SCHEME, TPMT_TK_HASHCHECK

from device.files import write_private
from device.keys import KeyError_
from protocol.keys import P256, public_b64

FILE = "device.tpm"
FORMAT = "pollbox-tpm-key/1"
STORAGE_TEMPLATE = ("ecc256:aes128cfb", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|decrypt|noda")
RECORD_TEMPLATE = ("ecc256:ecdsa-sha256", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign|noda")
DOCS = "docs/keys.md"


class TpmError(KeyError_):
    """The TPM cannot be reached or cannot give the unit its record key; the message says why and what to do."""


class TpmClearedError(TpmError):
    """This unit's TPM was cleared: the record key it held is gone for good."""


class WrongTpmError(TpmError):
    """The key file on this data partition was made by another TPM (a card moved or copied between units)."""


def _template(spec: tuple[str, str]) -> TPM2B_PUBLIC:
    return TPM2B_PUBLIC.parse(spec[0], objectAttributes=spec[1])


def _point(public: TPM2B_PUBLIC) -> bytes:
    """The 65-byte uncompressed point ``04 || X || Y`` of a TPM ECC public area."""
    ecc = public.publicArea.unique.ecc
    return b"\x04" + bytes(ecc.x.buffer).rjust(32, b"\0") + bytes(ecc.y.buffer).rjust(32, b"\0")


def _connect(tcti: str) -> ESAPI:
    try:
        return ESAPI(tcti)
    except (TSS2_Exception, RuntimeError, OSError) as exc:
        raise TpmError(f"cannot reach the TPM through {tcti!r} ({exc}); check that the TPM module is fitted and "
                       f"enabled (on a Pi: dtoverlay=tpm-slb9670), see {DOCS}") from None


def _fingerprint(esapi: ESAPI) -> str:
    """SHA-256 of an ECC primary key of the endorsement hierarchy: the same for one TPM, even after a clear."""
    handle, public, *_ = esapi.create_primary(TPM2B_SENSITIVE_CREATE(), _template(STORAGE_TEMPLATE),
                                              ESYS_TR.ENDORSEMENT)
    esapi.flush_context(handle)
    return hashlib.sha256(_point(public)).hexdigest()


def _storage_key(esapi: ESAPI) -> Any:
    handle, *_ = esapi.create_primary(TPM2B_SENSITIVE_CREATE(), _template(STORAGE_TEMPLATE), ESYS_TR.OWNER)
    return handle


class TpmSigner:
    """The unit's P-256 record key, loaded in its TPM for as long as the appliance runs."""

    alg = P256

    def __init__(self, esapi: ESAPI, key: Any, point: bytes) -> None:
        self._esapi, self._key = esapi, key
        self._public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        self._lock = threading.Lock()  # one ESAPI context: one command at a time
        self._scheme = TPMT_SIG_SCHEME(scheme=TPM2_ALG.ECDSA)
        self._scheme.details.any.hashAlg = TPM2_ALG.SHA256
        self._ticket = TPMT_TK_HASHCHECK(tag=TPM2_ST.HASHCHECK, hierarchy=TPM2_RH.NULL)

    @classmethod
    def create(cls, data_dir: Path, tcti: str) -> TpmSigner:
        """Create the record key in the TPM and write ``device.tpm`` (and ``device.pub``); refuses to overwrite."""
        path = data_dir / FILE
        if path.exists() or (data_dir / "device.key").exists():
            raise TpmError(f"{data_dir} already holds a device key; a unit keeps its key until zeroized")
        esapi = _connect(tcti)
        try:
            fingerprint = _fingerprint(esapi)
            storage = _storage_key(esapi)
            private, public, *_ = esapi.create(storage, TPM2B_SENSITIVE_CREATE(), _template(RECORD_TEMPLATE))
            key = esapi.load(storage, private, public)
            esapi.flush_context(storage)
        except TSS2_Exception as exc:
            esapi.close()
            raise TpmError(f"the TPM could not create the device key ({exc}); see {DOCS}") from None
        signer = cls(esapi, key, _point(public))
        doc = {"format": FORMAT, "tpm": fingerprint, "public_key": public_b64(signer.public_key()),
               "public": base64.b64encode(public.marshal()).decode(),
               "private": base64.b64encode(private.marshal()).decode()}
        write_private(path, json.dumps(doc, sort_keys=True).encode() + b"\n")
        (data_dir / "device.pub").write_text(doc["public_key"] + "\n")
        return signer

    @classmethod
    def load(cls, data_dir: Path, tcti: str) -> TpmSigner:
        """Load the record key into the TPM; a moved card or a cleared TPM is refused with what to do."""
        doc = _read(data_dir / FILE)
        esapi = _connect(tcti)
        try:
            return cls._load(esapi, doc, data_dir / FILE)
        except BaseException:
            esapi.close()
            raise

    @classmethod
    def _load(cls, esapi: ESAPI, doc: dict[str, str], path: Path) -> TpmSigner:
        try:
            fingerprint = _fingerprint(esapi)
        except TSS2_Exception as exc:
            raise TpmError(f"the TPM does not answer as expected ({exc}); see {DOCS}") from None
        if fingerprint != doc["tpm"]:
            raise WrongTpmError(
                f"{path} was made by another TPM ({doc['tpm'][:16]}), not this unit's ({fingerprint[:16]}): the "
                "data partition was moved or copied from another unit, or the TPM module was replaced. The device "
                f"key is not on the card, so this unit cannot sign records. See {DOCS}, 'A card in another unit'.")
        public, _ = TPM2B_PUBLIC.unmarshal(base64.b64decode(doc["public"]))
        private, _ = TPM2B_PRIVATE.unmarshal(base64.b64decode(doc["private"]))
        try:
            storage = _storage_key(esapi)
        except TSS2_Exception as exc:
            raise TpmError(f"the TPM could not derive its storage key ({exc}); see {DOCS}") from None
        try:
            key = esapi.load(storage, private, public)
        except TSS2_Exception as exc:
            esapi.flush_context(storage)
            if exc.error != TPM2_RC.INTEGRITY:  # e.g. no room for another object: not a sign of a clear
                raise TpmError(f"the TPM could not load the device key ({exc}); see {DOCS}") from None
            raise TpmClearedError(
                "this unit's TPM was cleared: it no longer holds the storage key its device key was made under, so "
                f"the device key ({path}) is gone for good and the unit cannot sign records. Technician: zeroize "
                f"the unit, make and enroll a new key, and have the CEC revoke the old one; see {DOCS}, "
                "'The TPM was cleared'.") from None
        esapi.flush_context(storage)  # Sign needs the loaded key only; a TPM without a resource manager has few slots
        point = _point(public)
        if base64.b64encode(point).decode() != doc["public_key"]:
            esapi.flush_context(key)
            raise TpmError(f"{path}: the key the TPM loaded is not the one the file names; see {DOCS}")
        return cls(esapi, key, point)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        """ECDSA P-256 over SHA-256 of ``data``, as ``r || s`` (64 bytes)."""
        digest = TPM2B_DIGEST(hashlib.sha256(data).digest())
        with self._lock:
            try:
                signature = self._esapi.sign(self._key, digest, self._scheme, self._ticket)
            except TSS2_Exception as exc:
                raise TpmError(f"the TPM refused to sign ({exc}); see {DOCS}") from None
        ecdsa = signature.signature.ecdsa
        return bytes(ecdsa.signatureR.buffer).rjust(32, b"\0") + bytes(ecdsa.signatureS.buffer).rjust(32, b"\0")

    def close(self) -> None:
        """Unload the key from the TPM and close the connection."""
        with self._lock:
            try:
                self._esapi.flush_context(self._key)
            except TSS2_Exception:
                pass
            self._esapi.close()


def _read(path: Path) -> dict[str, str]:
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise TpmError(f"no TPM device key at {path}; provision the unit first ('pollbox-provision unit keygen' "
                       f"with [key] store = \"tpm\"), see {DOCS}") from None
    except PermissionError:
        raise TpmError(f"{path} is not readable by this user; the appliance must own it") from None
    except ValueError:
        raise TpmError(f"{path} is not a TPM key file ({FORMAT})") from None
    names = ("tpm", "public_key", "public", "private")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not all(isinstance(doc.get(n), str) for n in names):
        raise TpmError(f"{path} is not a TPM key file ({FORMAT})")
    return {n: doc[n] for n in names}
