"""The partner portal: server-rendered pages (French, DSFR) over the partners, workshops and metrics APIs."""
