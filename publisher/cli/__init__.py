"""The commands: thin verbs over the library; problems become messages and exit codes here."""
