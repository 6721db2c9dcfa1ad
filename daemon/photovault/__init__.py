"""Photo Vault: a private photo-organisation daemon for a home NAS.

The data flow, stage by stage (each a subpackage):
watch -> catalog/queue -> media (decode) -> analyze -> sidecar + index -> query.
`photovault.app` assembles the stages in one place.
"""

__version__ = "0.1.0"

#: Where vaultd and vaultctl read the configuration unless told otherwise
#: (here, not in the config package, so that vaultctl finds it without loading pydantic).
DEFAULT_CONFIG_PATH = "/etc/photovault/vaultd.toml"
