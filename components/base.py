"""The page base class: a title, an icon, a URL path and one render()."""


class Page:
    """A sidebar page. Subclasses set the class attributes and implement ``render``."""

    title: str = ""
    icon: str = ""
    url_path: str = ""

    def render(self) -> None:
        raise NotImplementedError
