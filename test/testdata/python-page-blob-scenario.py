# A page-blob scenario with the Azure Storage SDK for Python v12 (Debian python3-azure), run by
# test/azure-clients.test.ts against Cairn's blob API: upload, snapshots, managed-disk diff,
# incremental copy, tags, Find Blobs by Tags and a SAS. Prints one JSON object of what it saw.
# Usage: /usr/bin/python3 python-page-blob-scenario.py CONNECTION_STRING CONTAINER
import datetime
import json
import sys

from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient, BlobSasPermissions, BlobServiceClient, generate_blob_sas
from azure.storage.blob._shared.response_handlers import return_response_headers

conn, container = sys.argv[1], sys.argv[2]
svc = BlobServiceClient.from_connection_string(conn)
c = svc.get_container_client(container)
c.create_container()
disk = c.get_blob_client('disk.vhd')
disk.create_page_blob(size=1024 * 1024, tags={'vm': 'web1'})
disk.upload_page(b'\x01' * 4096, offset=0, length=4096)
s1 = disk.create_snapshot()['snapshot']
disk.upload_page(b'\x02' * 512, offset=8192, length=512)
disk.clear_page(offset=0, length=512)
s2 = disk.create_snapshot()['snapshot']

out = {'version': svc.api_version}
# The managed-disk diff: the earlier snapshot named by URL (x-ms-previous-snapshot-url).
pages, cleared = disk.get_page_range_diff_for_managed_disk(disk.url + '?snapshot=' + s1, snapshot=s2)
out['managedDiff'] = {'pages': pages, 'cleared': cleared}
pages, cleared = disk.get_page_ranges(previous_snapshot_diff=s1, snapshot=s2)
out['diff'] = {'pages': pages, 'cleared': cleared}

# Incremental copy. start_copy_from_url(incremental_copy=True) of this SDK build passes an option the
# transport rejects (seal_blob), a client bug; the SDK's generated operation is the same REST call.
backup = c.get_blob_client('backup.vhd')
r = backup._client.page_blob.copy_incremental(copy_source=disk.url + '?snapshot=' + s1, cls=return_response_headers)
out['incrementalCopy'] = {'status': r['copy_status']}
r = backup._client.page_blob.copy_incremental(copy_source=disk.url + '?snapshot=' + s2, cls=return_response_headers)
copied = backup.get_blob_properties()
out['incrementalCopy']['second'] = r['copy_status']
out['incrementalCopy']['destinationSnapshot'] = copied.copy.destination_snapshot is not None
backup_snap = c.get_blob_client('backup.vhd', snapshot=copied.copy.destination_snapshot)
out['incrementalCopy']['bytes'] = backup_snap.download_blob(offset=8192, length=512).readall() == b'\x02' * 512

# Tags.
disk.set_blob_tags({'vm': 'web1', 'tier': 'gold'})
out['tags'] = disk.get_blob_tags()
out['tagCount'] = disk.get_blob_properties().tag_count
out['found'] = sorted(b.container_name + '/' + b.name for b in svc.find_blobs_by_tags("\"tier\"='gold'"))
out['foundInContainer'] = sorted(b.name for b in c.find_blobs_by_tags("\"vm\"='web1' AND \"tier\">='g'"))
try:
    disk.upload_page(b'\x03' * 512, offset=0, length=512, if_tags_match_condition="\"tier\"='silver'")
    out['ifTags'] = 'written'
except HttpResponseError as e:
    out['ifTags'] = [e.status_code, e.error_code]

# A SAS made by the SDK reads the disk; one that expired gets Azure's 403.
key = svc.credential.account_key
sas = generate_blob_sas(svc.account_name, container, 'disk.vhd', account_key=key,
                        permission=BlobSasPermissions(read=True),
                        expiry=datetime.datetime.utcnow() + datetime.timedelta(hours=1))
via_sas = BlobClient.from_blob_url(disk.url + '?' + sas)
out['sasRead'] = via_sas.download_blob(offset=8192, length=512).readall() == b'\x02' * 512
expired = generate_blob_sas(svc.account_name, container, 'disk.vhd', account_key=key,
                            permission=BlobSasPermissions(read=True),
                            expiry=datetime.datetime.utcnow() - datetime.timedelta(hours=1))
try:
    BlobClient.from_blob_url(disk.url + '?' + expired).download_blob().readall()
    out['sasExpired'] = 'read'
except HttpResponseError as e:
    out['sasExpired'] = [e.status_code, e.error_code]
print(json.dumps(out))
