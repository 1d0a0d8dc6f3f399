"""French words the services show people, in one place: the labels of the contracts' codes (the metrics API's
breakdowns and the portal's pages say the same), month names."""

from __future__ import annotations

__all__ = ["MONTHS", "INDICATORS", "PARTNERSHIP_TYPES", "COMMITMENTS", "THEMES", "NEEDS", "CHANNELS"]

# What the metrics count, named as on the dashboard.
INDICATORS: dict[str, str] = {
    "people_helped": "Personnes accompagnées",
    "workshop_attendances": "Participations aux ateliers",
    "accompaniments": "Accompagnements individuels",
    "france_services_clients": "Usagers aidés en France Services",
    "detections": "Détections au guichet",
    "people_detected": "Personnes détectées",
    "new_partnerships": "Nouveaux partenariats",
    "active_partnerships": "Partenariats actifs",
    "skills_missions": "Missions de mécénat de compétences",
    "advisers_deployed": "Conseillers numériques déployés",
    "venues_opened": "Nouveaux lieux équipés",
    "anonymous_help": "Aides anonymes",
}
PARTNERSHIP_TYPES = {
    "inclusive_purchasing": "Achats inclusifs",
    "skills_sponsorship": "Mécénat de compétences",
    "economic_cooperation": "Coopération économique",
    "social_innovation": "Innovation sociale",
}
# The Group's four societal commitments, in its own words.
COMMITMENTS = {
    "territorial_cohesion": "Développement et cohésion des territoires",
    "social_inclusion": "Inclusion sociale",
    "digital_inclusion": "Inclusion numérique",
    "ecological_transition": "Transition écologique",
}
THEMES = {
    "online_banking": "Banque en ligne",
    "smartphone_basics": "Premiers pas sur smartphone",
    "tablet_basics": "Premiers pas sur tablette",
    "senior_tablet_onboarding": "Tablette pour les seniors",
    "online_admin": "Démarches administratives en ligne",
    "email_and_messaging": "Courriel et messagerie",
    "online_safety": "Sécurité en ligne",
}
NEEDS = {
    "online_banking": "Banque en ligne",
    "admin_procedures": "Démarches administratives",
    "device_basics": "Prise en main d'un appareil",
    "email": "Courriel",
    "taxes": "Impôts",
    "benefits": "Prestations sociales",
    "health_insurance": "Assurance maladie",
    "employment": "Emploi",
    "identity_documents": "Papiers d'identité",
    "other": "Autre besoin",
}
CHANNELS = {
    "workshop": "Atelier",
    "france_services": "France Services",
    "adviser": "Conseiller numérique",
    "partner": "Partenaire",
}

MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)
