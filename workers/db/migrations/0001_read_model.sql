-- The read-model schema, contract v1 (../shared/read-models.md).
--
-- Table names are unqualified: the migration runner sets search_path to the configured
-- schema, so one file serves `read_model` in production and a throwaway schema per test.
-- Every statement is idempotent (IF NOT EXISTS), so re-running the file is harmless even
-- outside the runner's bookkeeping.
--
-- Money is NUMERIC (exact), times are timestamptz (UTC instants), ids that are UUIDs are
-- uuid. `projected_at` is the only wall-clock column: it is left out of every comparison.

CREATE TABLE IF NOT EXISTS reservations (
    reservation_id   uuid        PRIMARY KEY,
    seat_id          uuid        NOT NULL,
    concert_event_id uuid        NULL,          -- null until the seat's catalog entry is known
    customer_id      text        NOT NULL,
    section          text        NULL,
    seat_number      text        NOT NULL,
    base_price       numeric     NOT NULL,
    status           text        NOT NULL
        CONSTRAINT reservations_status_check CHECK (status IN ('active', 'ordered', 'expired')),
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    expired_at       timestamptz NULL,
    order_id         uuid        NULL,
    projected_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS reservations_seat_id_idx ON reservations (seat_id);
CREATE INDEX IF NOT EXISTS reservations_customer_id_idx ON reservations (customer_id);

CREATE TABLE IF NOT EXISTS orders (
    order_id      uuid        PRIMARY KEY,
    -- The winning header's message id: with placed_at it ranks competing order-placed
    -- messages for one order (the smallest (placed_at, message_id) wins).
    message_id    uuid        NOT NULL,
    customer_id   text        NOT NULL,
    -- How many of the order's reservations expired; written by deltas only, never by a
    -- header, so the header rule and the expiry count cannot overwrite each other.
    expired_items integer     NOT NULL DEFAULT 0,
    state         text        GENERATED ALWAYS AS (
        CASE WHEN expired_items > 0 THEN 'reservation_expired' ELSE 'placed' END
    ) STORED,
    item_count    integer     NOT NULL,
    total_amount  numeric     NOT NULL,
    currency      text        NOT NULL,
    placed_at     timestamptz NOT NULL,
    projected_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS orders_customer_id_idx ON orders (customer_id);

CREATE TABLE IF NOT EXISTS order_items (
    order_id       uuid        NOT NULL,
    seat_id        uuid        NOT NULL,
    reservation_id uuid        NOT NULL,
    price          numeric     NOT NULL,
    status         text        NOT NULL
        CONSTRAINT order_items_status_check CHECK (status IN ('active', 'reservation_expired')),
    projected_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, seat_id)
);
CREATE INDEX IF NOT EXISTS order_items_reservation_id_idx ON order_items (reservation_id);

CREATE TABLE IF NOT EXISTS customer_activity (
    customer_id      text        PRIMARY KEY,
    reservations     bigint      NOT NULL DEFAULT 0,
    active_holds     bigint      NOT NULL DEFAULT 0,
    expirations      bigint      NOT NULL DEFAULT 0,
    orders           bigint      NOT NULL DEFAULT 0,
    total_spent      numeric     NOT NULL DEFAULT 0,
    last_activity_at timestamptz NULL,
    projected_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS event_sales_daily (
    concert_event_id uuid        NOT NULL,
    section          text        NOT NULL,
    day              date        NOT NULL,      -- UTC day of the event's own time
    reservations     bigint      NOT NULL DEFAULT 0,
    expirations      bigint      NOT NULL DEFAULT 0,
    seats_ordered    bigint      NOT NULL DEFAULT 0,
    revenue          numeric     NOT NULL DEFAULT 0,
    projected_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (concert_event_id, section, day)
);

CREATE TABLE IF NOT EXISTS projection_checkpoints (
    projection   text        NOT NULL,
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    next_offset  bigint      NOT NULL,
    projected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition)
);
