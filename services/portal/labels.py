"""French words for the APIs' codes, and their refusals said so that a person can act on them."""

from __future__ import annotations

import re
from typing import Any

from shared.french import COMMITMENTS, INDICATORS, NEEDS, PARTNERSHIP_TYPES, THEMES

__all__ = ["LABELS", "label", "refusal", "field_errors"]

# The figures a partner sees on its pages ("Mes chiffres").
PORTAL_INDICATORS = (
    "people_helped",
    "workshop_attendances",
    "accompaniments",
    "france_services_clients",
    "new_partnerships",
    "active_partnerships",
    "skills_missions",
)

LABELS: dict[str, dict[str, str]] = {
    "partnership_type": PARTNERSHIP_TYPES,
    "commitment": COMMITMENTS,
    "status": {"draft": "Brouillon", "signed": "Signé", "active": "Actif", "ended": "Terminé"},
    "end_reason": {
        "expired": "Arrivé à échéance",
        "objectives_met": "Objectifs atteints",
        "partner_withdrew": "Retrait du partenaire",
        "la_poste_withdrew": "Retrait de La Poste",
        "partner_dissolved": "Dissolution du partenaire",
        "merged": "Fusion",
        "breach": "Manquement",
        "other": "Autre motif",
    },
    "partner_kind": {
        "association": "Association",
        "federation": "Fédération",
        "social_impact_startup": "Start-up à impact social",
        "adapted_company": "Entreprise adaptée (EA)",
        "protected_work": "ESAT",
        "integration_structure": "Structure d'insertion (SIAE)",
        "cooperative": "Coopérative",
        "foundation": "Fondation",
        "public_body": "Organisme public",
    },
    "theme": THEMES,
    "need": NEEDS,
    "workshop_status": {"scheduled": "Programmé", "cancelled": "Annulé"},
    "registration_status": {"registered": "Inscrit·e", "waiting": "En liste d'attente", "cancelled": "Annulée"},
    "origin": {"referral": "Orientée par La Poste", "walk_in": "Venue d'elle-même"},
    "venue_kind": {
        "post_office_room": "Salle de bureau de poste",
        "partner_premises": "Locaux du partenaire",
        "france_services": "Espace France Services",
    },
    "sheet_status": {"recorded": "Enregistrée", "duplicate": "Déjà enregistrée", "rejected": "Refusée"},
    "role": {
        "admin": "La Poste (administration)",
        "partner": "Partenaire",
        "adviser": "Conseiller numérique",
        "monitoring": "Suivi (lecture seule)",
    },
    "indicator": {k: INDICATORS[k] for k in PORTAL_INDICATORS},
}


def label(kind: str, code: Any) -> str:
    if code is None or code == "":
        return "—"
    return LABELS.get(kind, {}).get(str(code), str(code))


# The APIs speak English to programs; a person gets these words (the API's own text when none fits).
_REFUSALS: list[tuple[str, str]] = [
    (
        r"cannot sign a partnership that is (signed|active)",
        "Ce partenariat est déjà signé : il ne peut pas l'être une seconde fois.",
    ),
    (r"cannot sign a partnership that is ended", "Ce partenariat est terminé : il ne peut plus être signé."),
    (r"cannot activate a partnership that is active", "Ce partenariat est déjà actif."),
    (
        r"cannot activate a partnership that is draft",
        "Signez d'abord ce partenariat : seul un partenariat signé peut être activé.",
    ),
    (r"cannot activate a partnership that is ended", "Ce partenariat est terminé : il ne peut plus être activé."),
    (r"cannot renew a partnership that is (\w+)", "Seul un partenariat signé ou actif peut être renouvelé."),
    (r"cannot end a partnership that is draft", "Un brouillon ne se termine pas : supprimez-le plutôt."),
    (r"cannot end a partnership that is ended", "Ce partenariat est déjà terminé."),
    (r"open-ended partnership", "Ce partenariat n'a pas de date de fin : il n'y a rien à renouveler."),
    (r"a renewal must move ends_on later", "La nouvelle date de fin doit être postérieure à la date de fin actuelle."),
    (r"signed_on \(.*\) must be before ends_on", "La date de signature doit précéder la date de fin du partenariat."),
    (r"activated_on \(.*\) is before signed_on", "La date d'activation ne peut pas précéder la date de signature."),
    (
        r"activated_on \(.*\) is not before ends_on",
        "La date d'activation doit précéder la date de fin : renouvelez d'abord.",
    ),
    (r"(renewed|ended)_on \(.*\) is before signed_on", "Cette date ne peut pas précéder la date de signature."),
    (r"the new ends_on .* must be after renewed_on", "La nouvelle date de fin doit suivre la date du renouvellement."),
    (
        r"the session has not started yet",
        "La séance n'a pas encore commencé : les présences s'enregistrent à partir d'une heure avant son début.",
    ),
    (
        r"attended_at .* is outside the session: check-in is open from \S+T(\d\d):(\d\d) to \S+T(\d\d):(\d\d)",
        "L'heure de présence est hors de la séance : les présences se datent de {0} h {1} à {2} h {3}, "
        "heure du lieu (une heure avant le début, une heure après la fin).",
    ),
    (
        r"attended_at .* is not an ISO 8601",
        "L'heure de présence n'est pas lisible (attendu : 2026-12-02T14:05:00+01:00).",
    ),
    (
        r"attended_at must carry a UTC offset",
        "L'heure de présence doit indiquer son décalage horaire (par exemple +01:00).",
    ),
    (r"the workshop is cancelled", "Cet atelier est annulé : il n'accepte plus d'inscriptions ni de présences."),
    (r"no active registration (\S+)", "Aucune inscription active ne porte ce numéro dans cette séance."),
    (r"registration \S+ is another person's", "Cette inscription est celle d'une autre personne."),
    (r"the same attendee is already on line (\d+)", "La même personne figure déjà à la ligne {0}."),
    (r"seat (\S+) already used on line (\d+)", "La place {0} figure déjà à la ligne {1}."),
    (r"seat is missing", "Le numéro de place manque."),
    (r"more values than columns", "La ligne a plus de valeurs que de colonnes."),
    (
        r"an anonymous attendee needs a seat number",
        "Une personne sans référence client a besoin d'un numéro de place ou d'inscription.",
    ),
    (
        r"unknown columns",
        "La feuille a des colonnes inconnues ; colonnes permises : "
        "seat, client_reference, registration_id, attended_at.",
    ),
    (r"a sheet has at most (\d+) rows", "Une feuille compte au plus {0} lignes : coupez-la en plusieurs."),
    (r"the sheet must be UTF-8", "La feuille doit être un fichier CSV en UTF-8."),
    (r"the CSV must be UTF-8", "Le fichier doit être un CSV en UTF-8."),
    (r"was already recorded with other details", "Cet enregistrement existe déjà avec d'autres détails."),
    (r"venue \S+ is the premises of another partner", "Ce lieu est celui d'un autre partenaire."),
    (r"no venue", "Ce lieu n'existe pas."),
    (r"^(\w+) is required$", "La colonne {0} est obligatoire."),
    (r"^(\w+): '(.*)' is not a date", "Colonne {0} : « {1} » n'est pas une date (AAAA-MM-JJ)."),
    (r"^(\w+): '(.*)' is not one of (.*)$", "Colonne {0} : « {1} » n'est pas une valeur permise ({2})."),
    (
        r"^departements: unknown département code '(.*)'",
        "Colonne departements : « {0} » n'est pas un code de département.",
    ),
    (r"^status (\w+) needs signed_on", "Un partenariat au statut {0} doit avoir sa date de signature (signed_on)."),
    (r"partner columns incomplete \(missing (.*)\)", "Partenaire inconnu : ajoutez les colonnes {0} pour le créer."),
    (r"wrong username or password", "Identifiant ou mot de passe incorrect."),
    (
        r"too many failed sign-ins.*retry in (\d+) s",
        "Trop d'essais manqués pour ce compte : réessayez dans {0} secondes.",
    ),
    (r"too many .*retry in (\d+) s", "Trop de demandes en peu de temps : réessayez dans {0} secondes."),
    (r"does not exist in .* \(clocks change\)", "Cette heure n'existe pas au lieu choisi (changement d'heure)."),
    (r"may not (manage|see)", "Vous n'avez pas accès à cet élément."),
    (
        r"the service does not answer",
        "Le service ne répond pas pour le moment : rien n'a été enregistré, réessayez dans un instant.",
    ),
    (
        r"the database does not answer",
        "Le service ne répond pas pour le moment : rien n'a été enregistré, réessayez dans un instant.",
    ),
]


def refusal(detail: Any, *, prefix: bool = True) -> str:
    """An API's `detail` as a French sentence (the API's own words, introduced, when no sentence fits)."""
    if isinstance(detail, list):
        return "Certaines valeurs sont invalides : " + " ; ".join(str(e.get("msg", e)) for e in detail)
    text = str(detail)
    for pattern, words in _REFUSALS:
        found = re.search(pattern, text)
        if found:
            return words.format(*found.groups())
    return f"Le service a refusé la demande : {text}" if prefix else text


def field_errors(detail: Any, fields: dict[str, str]) -> dict[str, str]:
    """Pydantic's list of errors as {form field: French message}, for the fields the form has (`fields` maps an
    API field name to the form's)."""
    out: dict[str, str] = {}
    if not isinstance(detail, list):
        return out
    for error in detail:
        loc = [str(p) for p in error.get("loc", [])]
        for api_name, form_name in fields.items():
            if api_name in loc and form_name not in out:
                out[form_name] = f"Valeur refusée : {error.get('msg', '')}"
    return out
