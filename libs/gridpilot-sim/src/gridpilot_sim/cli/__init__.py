"""``gridpilot sim``: render one image or write a labelled data set."""
