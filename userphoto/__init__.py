"""userphoto: one contact photo per person, served everywhere, explained when it does not show."""

__version__ = "0.1.0"
