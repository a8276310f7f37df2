"""The few fixed words of a newsletter issue, in the languages readers use.

A language missing here gets English. A site changes the words by overriding
the templates (`templates/issue.mjml`, `templates/issue.txt`).
"""

from __future__ import annotations

from collections.abc import Mapping

WORDS: Mapping[str, Mapping[str, str]] = {
    "en": {
        "hello": "Hello {name},",
        "hello_anonymous": "Hello,",
        "updates": "{count} updates",
        "in_this_issue": "In this issue",
        "when": "When",
        "where": "Where",
        "add_to_calendar": "Add to calendar",
        "people": "People",
        "links": "Links",
        "read_online": "Read online",
        "read_more": "Read more",
        "photo": "Photo",
        "cancelled": "Cancelled",
        "unsubscribe": "Unsubscribe",
        "preferences": "Choose your newsletters",
        "view_online": "View in your browser",
        "sent_to": "This email was sent to {email}.",
        "list": "You receive it as a subscriber of the “{list}” list.",
    },
    "es": {
        "hello": "Hola, {name}:",
        "hello_anonymous": "Hola:",
        "updates": "{count} novedades",
        "in_this_issue": "En este número",
        "when": "Cuándo",
        "where": "Dónde",
        "add_to_calendar": "Añadir al calendario",
        "people": "Personas",
        "links": "Enlaces",
        "read_online": "Leer en línea",
        "read_more": "Leer más",
        "photo": "Foto",
        "cancelled": "Cancelado",
        "unsubscribe": "Cancelar la suscripción",
        "preferences": "Elegir sus boletines",
        "view_online": "Ver en el navegador",
        "sent_to": "Este correo se envió a {email}.",
        "list": "Lo recibe como suscriptor de la lista «{list}».",
    },
    "fr": {
        "hello": "Bonjour {name},",
        "hello_anonymous": "Bonjour,",
        "updates": "{count} nouvelles",
        "in_this_issue": "Dans ce numéro",
        "when": "Quand",
        "where": "Où",
        "add_to_calendar": "Ajouter à l’agenda",
        "people": "Personnes",
        "links": "Liens",
        "read_online": "Lire en ligne",
        "read_more": "Lire la suite",
        "photo": "Photo",
        "cancelled": "Annulé",
        "unsubscribe": "Se désabonner",
        "preferences": "Choisir vos lettres",
        "view_online": "Voir dans le navigateur",
        "sent_to": "Ce message a été envoyé à {email}.",
        "list": "Vous le recevez en tant qu’abonné de la liste « {list} ».",
    },
    "pt": {
        "hello": "Olá, {name},",
        "hello_anonymous": "Olá,",
        "updates": "{count} novidades",
        "in_this_issue": "Nesta edição",
        "when": "Quando",
        "where": "Onde",
        "add_to_calendar": "Adicionar à agenda",
        "people": "Pessoas",
        "links": "Links",
        "read_online": "Ler online",
        "read_more": "Leia mais",
        "photo": "Foto",
        "cancelled": "Cancelado",
        "unsubscribe": "Cancelar a inscrição",
        "preferences": "Escolher seus boletins",
        "view_online": "Ver no navegador",
        "sent_to": "Este e-mail foi enviado para {email}.",
        "list": "Você o recebe como assinante da lista “{list}”.",
    },
}


def words_for(language: str) -> Mapping[str, str]:
    """The words for a BCP 47 tag (by its primary language), English if unknown."""
    return WORDS.get(language.split("-")[0].lower(), WORDS["en"])
