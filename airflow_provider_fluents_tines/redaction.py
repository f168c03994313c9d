"""
What may be shown of text that came from a server, a user or a connection: secrets scrubbed out,
control and bidirectional characters escaped; secrets sealed with, and digests keyed from, Airflow's
Fernet key. The one place for these rules; nothing here imports Airflow when loaded (the sandbox and
the error parser use it too).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

REDACTED = "***"
# Shorter values are too common to scrub from text without mangling it (Airflow's masker also has a floor).
_MIN_SECRET_LENGTH = 4


def scrub(text: str, secrets: Iterable[str]) -> str:
    """
    ``text`` with every secret replaced by ``***``, as sent and as a server may echo it (JSON-escaped
    or URL-encoded). Scrub before cutting text short: a cut can split a secret and leave a prefix.
    """
    for secret in secrets:
        if not secret or len(secret) < _MIN_SECRET_LENGTH:
            continue
        for form in {secret, json.dumps(secret)[1:-1], quote(secret, safe="")}:
            text = text.replace(form, REDACTED)
    return text


def printable(text: str) -> str:
    """
    ``text`` safe for one log line: every character Python deems unprintable (controls, bidirectional
    overrides and other format characters, line and paragraph separators, spaces other than " ") is
    shown escaped (``\\n``, ``\\u202e``), so nothing a server or a template produced can forge a log
    line or reorder what a reader sees.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def shown_value(value: object) -> str:
    """A user- or server-given value (an id, a phone number) for a log line or an error message."""
    return printable(value if isinstance(value, str) else repr(value))


def without_userinfo(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``: hosts are shown, credentials never."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{REDACTED}@{host}"))


# ---- sensitive values inside API objects (a Tines webhook's `secret`, credentials in options) ----------

# Airflow's masker's default list (`[core] sensitive_var_conn_names` adds to it); a key is sensitive
# when its normalized name contains one of these, as Airflow decides for connection extras.
_AIRFLOW_SENSITIVE_FIELDS = frozenset(
    {
        "access_key",
        "access_token",
        "api_key",
        "apikey",
        "auth_header",
        "authorization",
        "bearer",
        "connection_string",
        "credential",
        "dsn",
        "passphrase",
        "passwd",
        "password",
        "private_key",
        "proxy",
        "secret",
        "service_account",
        "service_key",
        "token",
        "keyfile_dict",
        "webhook_url",
    }
)
_ENCRYPTED_MARKER = "__fluents_tines_encrypted__"


@cache
def _sensitive_fields() -> frozenset[str]:
    try:
        from airflow_provider_fluents_tines.version_compat import conf

        extra = conf.get("core", "sensitive_var_conn_names", fallback="") or ""
    except Exception:  # the sandbox and tools run without Airflow's configuration
        extra = ""
    return _AIRFLOW_SENSITIVE_FIELDS | {name.strip().lower() for name in extra.split(",") if name.strip()}


def is_sensitive_key(name: object) -> bool:
    """Whether values under this key are secrets (Airflow's masker rule; covers Tines' webhook ``secret``)."""
    if not isinstance(name, str):
        return False
    normalized = re.sub(r"\W+", "_", name.strip().lower())
    return any(field in normalized for field in _sensitive_fields())


def is_sensitive_path(path: str) -> bool:
    """
    Whether a dotted field path (``options.secret``, ``options.headers[0].token``) crosses a sensitive
    key. The whole path is judged, not its pieces: a key may itself hold dots (``options.api.key``).
    """
    return is_sensitive_key(re.sub(r"\[\d+\]", "", path))


def redact(value: Any) -> Any:
    """A copy of ``value`` with every non-empty value under a sensitive key replaced by ``***``."""
    if isinstance(value, Mapping):
        return {
            key: REDACTED if is_sensitive_key(key) and item not in (None, "") else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    return value


def sensitive_values(value: Any, under_sensitive_key: bool = False) -> list[str]:
    """Every non-empty string (or number) held under a sensitive key, to register with the masker."""
    if isinstance(value, Mapping):
        return [
            found
            for key, item in value.items()
            for found in sensitive_values(item, under_sensitive_key or is_sensitive_key(key))
        ]
    if isinstance(value, (list, tuple)):
        return [found for item in value for found in sensitive_values(item, under_sensitive_key)]
    if under_sensitive_key and value not in (None, "") and not isinstance(value, bool):
        return [str(value)]
    return []


def encrypt_sensitive(value: Any, fernet: Any) -> Any:
    """
    A copy of ``value`` whose values under sensitive keys are Fernet tokens (``{marker: token}``),
    for a previous value a rollback must write back without ever storing it in the clear.
    """
    if isinstance(value, Mapping):
        return {
            key: _encrypted(item, fernet)
            if is_sensitive_key(key) and item not in (None, "")
            else encrypt_sensitive(item, fernet)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [encrypt_sensitive(item, fernet) for item in value]
    return value


def decrypt_sensitive(value: Any, fernet: Any) -> Any:
    """The inverse of :func:`encrypt_sensitive`."""
    if isinstance(value, Mapping):
        if set(value) == {_ENCRYPTED_MARKER}:
            return json.loads(fernet.decrypt(value[_ENCRYPTED_MARKER].encode()).decode())
        return {key: decrypt_sensitive(item, fernet) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [decrypt_sensitive(item, fernet) for item in value]
    return value


def has_encrypted(value: Any) -> bool:
    if isinstance(value, Mapping):
        return set(value) == {_ENCRYPTED_MARKER} or any(has_encrypted(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_encrypted(item) for item in value)
    return False


def _encrypted(item: Any, fernet: Any) -> dict[str, str]:
    return {_ENCRYPTED_MARKER: fernet.encrypt(json.dumps(item).encode()).decode()}


def airflow_fernet() -> Any | None:
    """Airflow's Fernet (``[core] fernet_key``) to encrypt with, or None when the key is not set."""
    try:  # the Task SDK's, from Airflow 3.1
        from airflow.sdk.crypto import get_fernet
    except ImportError:  # Airflow 3.0
        from airflow.models.crypto import get_fernet  # type: ignore[no-redef,unused-ignore]
    fernet = get_fernet()
    return fernet if getattr(fernet, "is_encrypted", False) else None


def digest_key(purpose: str) -> bytes:
    """
    The key of digests that are stored but must not give away what they digest (a short secret
    among the values could be guessed from a plain hash): derived from Airflow's Fernet key where
    one is set, a fixed one otherwise. Blocking (a ``fernet_key_cmd`` runs a command).

    :param purpose: names the use, so that one use's digests never match another's.
    """
    import hashlib

    from airflow_provider_fluents_tines.version_compat import conf

    fernet_key = (conf.get("core", "fernet_key", fallback="") or "").split(",")[0].strip()
    return hashlib.sha256(f"airflow-provider-fluents-tines/{purpose}:{fernet_key}".encode()).digest()


def seal(values: dict[str, Any], *, allow_unkept: bool, option: str) -> tuple[dict[str, Any], list[str]]:
    """
    ``values`` as a way back may store them: secrets Fernet-encrypted with Airflow's key.

    Without a key a secret could only be kept in the clear: the fields holding one are refused
    (an :class:`InvalidFieldError` naming them and ``option``), or with ``allow_unkept`` starred and
    returned as the second item (a way back then cannot restore them).
    """
    secret_fields = [name for name, value in values.items() if sensitive_values({name: value})]
    if not secret_fields:
        return values, []
    fernet = airflow_fernet()
    if fernet is not None:
        return encrypt_sensitive(values, fernet), []
    if not allow_unkept:
        from airflow_provider_fluents_tines.validation import invalid

        raise invalid(
            ", ".join(secret_fields),
            "holds a secret a rollback would need, and Airflow has no Fernet key ([core] fernet_key) "
            f"to keep it encrypted; set one, or pass {option}=True to change it "
            "without a way back for that secret",
        )
    return redact(values), secret_fields


def unseal(values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """
    The inverse of :func:`seal`: the values, decrypted, and the fields whose secret was not kept.

    :raises ValueError: the values hold encrypted secrets and Airflow has no Fernet key now.
    """
    lost = [name for name, value in values.items() if REDACTED in sensitive_values({name: value})]
    kept = {name: value for name, value in values.items() if name not in lost}
    if not has_encrypted(kept):
        return kept, lost
    fernet = airflow_fernet()
    if fernet is None:
        raise ValueError("the stored values hold encrypted secrets and Airflow has no Fernet key now")
    return decrypt_sensitive(kept, fernet), lost


def without_sensitive(value: Any) -> Any:
    """A copy of ``value`` without the entries under sensitive keys (what may be compared in the open)."""
    if isinstance(value, Mapping):
        return {key: without_sensitive(item) for key, item in value.items() if not is_sensitive_key(key)}
    if isinstance(value, (list, tuple)):
        return [without_sensitive(item) for item in value]
    return value


def mask_sensitive(value: Any) -> None:
    """Register every secret ``value`` holds with Airflow's masker: no log line may show it."""
    from airflow_provider_fluents_tines.version_compat import mask_secret

    for secret in sensitive_values(value):
        mask_secret(secret)
