"""The photo becomes an avatar bundle: landmarks, mouth shapes (visemes), mask, idle loop."""
