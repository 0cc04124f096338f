"""The chair's screen while the first boot has refused the USB stick: why, in Kyrgyz, Russian or English.

When ``device.firstboot`` refuses a stick no appliance runs, so nothing else would answer on the
chair's screen. The image's ``pollbox-firstboot-screen.service`` (started by the import unit's
``OnFailure=``) serves this page instead, on the address and port the chair's screen uses: the
reason, that nothing was installed, and what to do. It reads the refusal file the import wrote and
says nothing about the stick beyond it. Kyrgyz is the default; ``?lang=ru`` and ``?lang=en`` switch.
``/api/firstboot`` answers the same as JSON for a technician's tools.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

LANGUAGES = ("ky", "ru", "en")
LANGUAGE_NAMES = {"ky": "Кыргызча", "ru": "Русский", "en": "English"}

TEXT: dict[str, dict[str, str]] = {
    "title": {
        "ky": "Участок орнотулган жок",
        "ru": "Участок не установлен",
        "en": "The station was not installed"},
    "nothing": {
        "ky": "Түзмөккө эч нерсе орнотулган жок. Техникти чакырыңыз.",
        "ru": "На устройство ничего не установлено. Вызовите техника.",
        "en": "Nothing was installed on the unit. Call the technician."},
    "restart": {
        "ky": "Туура USB-флешканы салгандан кийин түзмөктү кайра күйгүзүңүз.",
        "ru": "Вставьте правильный USB-накопитель и перезапустите устройство.",
        "en": "Insert the right USB stick, then restart the unit."},
    "no_stick": {
        "ky": "Участок жазылган USB-флешка табылган жок.",
        "ru": "USB-накопитель с участком не найден.",
        "en": "No USB stick with a station was found."},
    "no_package": {
        "ky": "USB-флешкада участоктун пакети жок.",
        "ru": "На USB-накопителе нет пакета участка.",
        "en": "The USB stick holds no station package."},
    "two_packages": {
        "ky": "USB-флешкада бирден ашык участок пакети бар. Анда ушул участоктун пакетин гана калтырыңыз.",
        "ru": "На USB-накопителе больше одного пакета участка. Оставьте на нём только пакет этого участка.",
        "en": "The USB stick holds more than one station package. Leave only this station's package on it."},
    "bad_config": {
        "ky": "USB-флешкадагы участоктун жөндөөлөрү окулбай жатат.",
        "ru": "Настройки участка на USB-накопителе не читаются.",
        "en": "The station settings on the USB stick cannot be read."},
    "stick_readonly": {
        "ky": "USB-флешкага жазуу мүмкүн эмес (жазуудан корголгон). Түзмөк өзүнүн каттоо суроосун ага жаза алган жок.",
        "ru": "USB-накопитель защищён от записи. Устройство не смогло записать на него свой запрос на регистрацию.",
        "en": "The USB stick is write-protected. The unit could not write its enrollment request on it."},
    "stick_full": {
        "ky": "USB-флешка толуп калган. Түзмөк өзүнүн каттоо суроосун ага жаза алган жок.",
        "ru": "USB-накопитель заполнен. Устройство не смогло записать на него свой запрос на регистрацию.",
        "en": "The USB stick is full. The unit could not write its enrollment request on it."},
    "tpm_key": {
        "ky": "Түзмөктүн ачкычы анын коопсуздук чибинде түзүлгөн жок.",
        "ru": "Ключ устройства не удалось создать в его микросхеме безопасности.",
        "en": "The unit's key could not be made in its security chip (TPM)."},
    "unsigned": {
        "ky": "Участоктун пакетине БШК кол койгон эмес.",
        "ru": "Пакет участка не подписан ЦИК.",
        "en": "The station package is not signed by the CEC."},
    "tampered": {
        "ky": "Участоктун пакети БШК кол койгондон кийин өзгөртүлгөн.",
        "ru": "Пакет участка изменён после подписи ЦИК.",
        "en": "The station package was changed after the CEC signed it."},
    "foreign": {
        "ky": "Участоктун пакетине бул шайлоонун БШКсы кол койгон эмес.",
        "ru": "Пакет участка подписан не ЦИК этих выборов.",
        "en": "The station package was not signed by this election's CEC."},
    "wrong_election": {
        "ky": "Участоктун пакети башка шайлоо үчүн ({found}); бул түзмөк {expected} шайлоосу үчүн жөндөлгөн.",
        "ru": "Пакет участка для других выборов ({found}); это устройство настроено на выборы {expected}.",
        "en": "The station package is for another election ({found}); this unit is set up for {expected}."},
    "expired": {
        "ky": "Участоктун пакетинин мөөнөтү {expired} бүткөн.",
        "ru": "Срок действия пакета участка истёк {expired}.",
        "en": "The station package expired on {expired}."},
    "bad_package": {
        "ky": "Участоктун пакетин колдонууга болбойт.",
        "ru": "Пакет участка нельзя использовать.",
        "en": "The station package cannot be used."},
    "no_anchor": {
        "ky": ("Бул түзмөктүн системасы шайлоонун БШК ачкычысыз түзүлгөн, ошондуктан ал эч бир "
               "USB-флешканы текшере албайт."),
        "ru": ("Система этого устройства собрана без ключа ЦИК этих выборов, поэтому она не может проверить "
               "ни один USB-накопитель."),
        "en": "This unit's system was built without the election's CEC key, so it cannot check any USB stick."},
    "simulation": {
        "ky": "USB-флешкада демонстрациялык участок бар; бул түзмөк чыныгы участокторду гана кабыл алат.",
        "ru": "На USB-накопителе демонстрационный участок; это устройство принимает только настоящие участки.",
        "en": "The USB stick holds a demonstration station; this unit accepts real stations only."},
    "waiting": {
        "ky": "Түзмөк күйүп жатат.",
        "ru": "Устройство запускается.",
        "en": "The unit is starting."},
}
"""Every sentence of the page in every language (a test holds the table complete and Latin-free in ky/ru)."""

STYLE = """
body { font-family: "DejaVu Sans", sans-serif; margin: 0; background: #fde6e3; color: #111; }
main { max-width: 46rem; margin: 8vh auto; padding: 1.5rem 2rem; background: #fff; border-left: 12px solid #a3140c; }
h1 { color: #a3140c; font-size: 2rem; margin: 0 0 1rem; }
p { font-size: 1.35rem; line-height: 1.5; }
nav { margin-top: 2rem; font-size: 1.1rem; }
nav a { margin-right: 1.2rem; color: #1c4e80; }
"""

Start = Callable[[str, list[tuple[str, str]]], Any]


def read_refusal(path: Path) -> dict[str, Any] | None:
    """The refusal the import recorded, or None while there is none (yet)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("kind") in TEXT else None


def sentence(key: str, lang: str, facts: dict[str, str]) -> str:
    text = TEXT[key][lang]
    try:
        return text.format(**facts)
    except (KeyError, IndexError):
        return text.split(" (")[0].rstrip(";.") + "."


def render(refusal: dict[str, Any] | None, lang: str) -> str:
    """The page in ``lang`` for ``refusal`` (None: the import has not decided yet)."""
    esc = html.escape
    facts = {k: str(v) for k, v in dict(refusal.get("facts", {})).items()} if refusal else {}
    if refusal is None:
        title, lines = TEXT["waiting"][lang], []
    else:
        title = TEXT["title"][lang]
        lines = [sentence(str(refusal["kind"]), lang, facts), TEXT["nothing"][lang], TEXT["restart"][lang]]
    body = "".join(f"<p>{esc(line)}</p>" for line in lines)
    links = "".join(f'<a href="/?lang={code}" lang="{code}">{esc(LANGUAGE_NAMES[code])}</a>' for code in LANGUAGES
                    if code != lang)
    return (f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f'<meta http-equiv="refresh" content="15"><style>{STYLE}</style></head>'
            f'<body><main id="firstboot-refusal"><h1>{esc(title)}</h1>{body}<nav>{links}</nav></main></body></html>')


def make_app(refusal_file: Path) -> Callable[[dict[str, Any], Start], Iterable[bytes]]:
    """The WSGI application of the page (reads the refusal file on every request)."""
    def app(environ: dict[str, Any], start: Start) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        refusal = read_refusal(refusal_file)
        if path == "/api/firstboot":
            body = json.dumps({"refused": refusal is not None, "kind": refusal and refusal["kind"],
                               "detail": refusal and refusal.get("detail")}).encode()
            start("200 OK", [("Content-Type", "application/json"), ("Cache-Control", "no-store")])
            return [body]
        query = parse_qs(environ.get("QUERY_STRING", ""))
        lang = query.get("lang", ["ky"])[0]
        lang = lang if lang in LANGUAGES else "ky"
        body = render(refusal, lang).encode()
        start("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")])
        return [body]
    return app


def serve(refusal_file: Path, host: str, port: int) -> None:
    """Serve the page until the process is stopped (the unit is restarted with the right stick)."""
    from waitress import serve as waitress_serve
    waitress_serve(make_app(refusal_file), host=host, port=port, threads=2, ident="pollbox")
