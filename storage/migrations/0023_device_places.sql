-- Where a device is inside its location (issue 13 §1, §5): the room (房号) of a household alarm on its
-- floor, the post number (桩号) of a charging post in its shed. With the location's building, unit and
-- floor this is the card's "building · unit · floor · room" and "shed · post · port" (the port comes
-- with the alarm), and the site plan places devices by them. Free text as written on site ("601",
-- "A3"), short, never blank; storage/registry.py writes them, the CSV import and the simulator fill them.

ALTER TABLE devices
    ADD COLUMN room text CHECK (length(room) BETWEEN 1 AND 32 AND room = btrim(room)),
    ADD COLUMN post text CHECK (length(post) BETWEEN 1 AND 32 AND post = btrim(post));

-- Household alarms registered before this migration kept their flat in metadata.household
UPDATE devices SET room = btrim(left(metadata ->> 'household', 32))
WHERE room IS NULL AND btrim(left(metadata ->> 'household', 32)) <> '';
