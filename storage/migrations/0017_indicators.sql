-- Indicator verification (indicators.md, domain.md §7): inspection, testing and maintenance records
-- (巡检/检测/维保, Jiangsu basic item [10] needs them "complete"), the assessor's manual evidence for
-- items that need an on-site look, and the attachments (photos, scanned records) both may carry.

-- Attachments are kept in the database so that a report's evidence is one backup away; the API caps
-- their size (api/indicators). sha256 names the content, so the same scan uploaded twice is one row.
CREATE TABLE evidence_attachments (
    id            bigserial PRIMARY KEY,
    community_id  bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    sha256        text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    filename      text NOT NULL CHECK (length(filename) BETWEEN 1 AND 200),
    content_type  text NOT NULL,
    size_bytes    integer NOT NULL CHECK (size_bytes BETWEEN 1 AND 10485760),
    content       bytea NOT NULL,
    uploaded_by   text NOT NULL,
    uploaded_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (community_id, sha256)
);

-- One record of work done on a device, or on a whole system of the community (device_id NULL, family
-- set): who did what, when, with which result. Device self-tests reported over MQTT are recorded here
-- too (source 'device'), so they count as test records.
CREATE TABLE maintenance_records (
    id            bigserial PRIMARY KEY,
    community_id  bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    device_id     integer REFERENCES devices (id) ON DELETE CASCADE,
    family        text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('inspection', 'test', 'maintenance')),
    performed_at  timestamptz NOT NULL,
    performed_by  text NOT NULL CHECK (length(performed_by) BETWEEN 1 AND 100),
    result        text NOT NULL CHECK (result IN ('pass', 'fail', 'fixed')),
    notes         text NOT NULL DEFAULT '' CHECK (length(notes) <= 2000),
    attachments   bigint[] NOT NULL DEFAULT '{}',
    source        text NOT NULL CHECK (source IN ('manual', 'import', 'device')),
    recorded_by   text NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    -- a device's self-test delivered twice is one record
    dedup_key     text
);
CREATE INDEX maintenance_records_community ON maintenance_records (community_id, family, performed_at DESC);
CREATE INDEX maintenance_records_device ON maintenance_records (device_id, kind, performed_at DESC);
CREATE UNIQUE INDEX maintenance_records_dedup ON maintenance_records (community_id, dedup_key)
    WHERE dedup_key IS NOT NULL;

-- What an assessor or manager found on site for one indicator item. The report shows these beside the
-- device-evidenced items and never turns them into a computed score.
CREATE TABLE manual_evidence (
    id            bigserial PRIMARY KEY,
    community_id  bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    scheme        text NOT NULL CHECK (scheme ~ '^[a-z_]{1,32}$'),
    item          text NOT NULL CHECK (item ~ '^[A-Za-z0-9_.+-]{1,32}$'),
    verdict       text CHECK (verdict IN ('met', 'not_met', 'partly')),
    finding       text NOT NULL CHECK (length(finding) BETWEEN 1 AND 4000),
    observed_on   date NOT NULL,
    attachments   bigint[] NOT NULL DEFAULT '{}',
    recorded_by   text NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX manual_evidence_community ON manual_evidence (community_id, scheme, item, observed_on DESC);
