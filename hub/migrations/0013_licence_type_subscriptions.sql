-- A department may subscribe to a licence type as it does to a dataset (issue 15, item 2): the
-- issuing department approves, and the subscriber then reads that type's licences with the
-- approved fields. `kind` says what `dataset` names: a dataset or a licence type. Licence
-- types are not rows of `datasets`, so the foreign key gives way; the registry names both
-- and every request is checked against it.
ALTER TABLE subscriptions
    ADD COLUMN kind TEXT NOT NULL DEFAULT 'dataset' CHECK (kind IN ('dataset', 'licence_type'));
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_dataset_fkey;
CREATE INDEX subscriptions_licence_readers ON subscriptions (department, dataset)
    WHERE kind = 'licence_type';
