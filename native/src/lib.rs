//! `hub_native`: the hub's native hot loops. Each module registers its own functions; the
//! Python side keeps a pure-Python reference for every one of them (identical bytes, tested).
use pyo3::prelude::*;

mod aead_bound;
mod aead_seal;
mod avro_blocks;
mod avro_columns;
mod avro_encode;
mod avro_strings;
mod crc32;
mod csv_rows;
mod dict_column;
mod find_text;
mod headers;
mod json_array;
mod json_rows;
mod json_text;
mod kafka_produce;
mod kafka_produce_dict;
mod kafka_stored;
mod key_index;
mod leaves;
mod ledger_batch;
mod line_ends;
mod merkle;
mod metadata;
mod prepare_columns;
mod record_mac;
mod rfc3339;
mod side_body;
mod stored_avro;
mod stored_batch;
mod stored_leaves;
mod string_objects;
mod tree_parents;
mod uuid_text;
mod zstd_cctx;

#[pymodule]
fn hub_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    aead_bound::register(m)?;
    aead_seal::register(m)?;
    avro_blocks::register(m)?;
    avro_columns::register(m)?;
    avro_encode::register(m)?;
    avro_strings::register(m)?;
    crc32::register(m)?;
    csv_rows::register(m)?;
    find_text::register(m)?;
    headers::register(m)?;
    json_array::register(m)?;
    json_rows::register(m)?;
    json_text::register(m)?;
    kafka_produce::register(m)?;
    kafka_produce_dict::register(m)?;
    kafka_stored::register(m)?;
    leaves::register(m)?;
    line_ends::register(m)?;
    ledger_batch::register(m)?;
    merkle::register(m)?;
    metadata::register(m)?;
    prepare_columns::register(m)?;
    record_mac::register(m)?;
    rfc3339::register(m)?;
    side_body::register(m)?;
    stored_avro::register(m)?;
    stored_batch::register(m)?;
    stored_leaves::register(m)?;
    string_objects::register(m)?;
    tree_parents::register(m)?;
    uuid_text::register(m)?;
    Ok(())
}
