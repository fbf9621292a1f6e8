-- Sample data for the local demo and the tests: several schemas, roles with grants, sequences,
-- a large object, non-ASCII text, database-level settings, an extension-free setup that any
-- stock PostgreSQL 15 accepts. Run as a superuser against an empty server.
\set ON_ERROR_STOP on
CREATE ROLE app_owner LOGIN PASSWORD 'app-owner-pw';
CREATE ROLE app_reader NOLOGIN;
CREATE ROLE reporting LOGIN PASSWORD 'reporting-pw' IN ROLE app_reader;
CREATE DATABASE shop OWNER app_owner ENCODING 'UTF8' TEMPLATE template0;
CREATE DATABASE "analytics-ü" OWNER reporting TEMPLATE template0;
COMMENT ON DATABASE shop IS 'Lifeline sample: orders and customers';
ALTER DATABASE shop SET work_mem = '8MB';
GRANT CONNECT ON DATABASE shop TO app_reader;

\connect shop
SET ROLE app_owner;
CREATE SCHEMA sales;
CREATE SCHEMA crm;
CREATE SEQUENCE sales.invoice_no START 1000 INCREMENT 7;
CREATE TABLE crm.customer (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    city text,
    note text
);
CREATE TABLE sales."order" (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES crm.customer (id),
    invoice bigint NOT NULL DEFAULT nextval('sales.invoice_no'),
    total numeric(12, 2) NOT NULL,
    placed_at timestamptz NOT NULL DEFAULT '2026-01-01 00:00:00+00',
    details jsonb
);
CREATE INDEX order_customer_idx ON sales."order" (customer_id);
CREATE VIEW sales.big_orders AS SELECT * FROM sales."order" WHERE total > 500;
INSERT INTO crm.customer (name, city, note)
SELECT 'Kunde ' || g, (ARRAY['Zürich', 'São Paulo', 'Kraków', '東京', 'Reykjavík'])[1 + g % 5],
       CASE WHEN g % 7 = 0 THEN 'naïve café — ☕ ' || g END
  FROM generate_series(1, 2000) AS g;
INSERT INTO sales."order" (customer_id, total, details)
SELECT 1 + g % 2000, (g * 37 % 100000) / 100.0, jsonb_build_object('items', g % 9, 'gift', g % 3 = 0)
  FROM generate_series(1, 20000) AS g;
SELECT setval('sales.invoice_no', 99991);
RESET ROLE;
GRANT USAGE ON SCHEMA sales, crm TO app_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA sales, crm TO app_reader;
SELECT lo_from_bytea(424242, convert_to('large object payload: Grüße aus Lifeline', 'UTF8'));
ALTER LARGE OBJECT 424242 OWNER TO app_owner;

\connect "analytics-ü"
CREATE TABLE public.events (id int PRIMARY KEY, label text);
INSERT INTO public.events SELECT g, 'événement ' || g FROM generate_series(1, 500) AS g;
ALTER TABLE public.events OWNER TO reporting;
