"""Low and medium magnification images of the world: atlas tiles, squares, views, previews."""
